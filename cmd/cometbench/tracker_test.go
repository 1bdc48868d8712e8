package main

import (
	"testing"
	"time"
)

func TestTrackerCountsLostAndDuplicated(t *testing.T) {
	codec := newPayloadCodec("run00001")
	tr := newTracker(codec, 5, 2)
	a, b := tr.newLedger(), tr.newLedger()
	now := time.Now()
	ts := now.Add(-3 * time.Millisecond).UnixNano()

	// Both subscribers prove live; the run freezes with both expected.
	tr.deliver(a, probeSeq, ts, now)
	tr.deliver(b, probeSeq, ts, now)
	tr.deliver(a, probeSeq, ts, now) // a second probe changes nothing
	select {
	case <-tr.allProbe:
	default:
		t.Fatal("every subscriber saw a probe but allProbe is open")
	}
	tr.freeze()

	for seq := uint64(1); seq <= 5; seq++ {
		tr.deliver(a, seq, ts, now)
	}
	tr.deliver(a, 3, ts, now) // duplicate
	tr.deliver(b, 1, ts, now)
	tr.deliver(b, 2, ts, now)
	tr.deliver(b, 9, ts, now) // beyond the run: foreign

	if got := tr.unique.Load(); got != 7 {
		t.Errorf("unique = %d, want 7", got)
	}
	if got := tr.dups.Load(); got != 1 {
		t.Errorf("dups = %d, want 1", got)
	}
	if got := tr.lost(); got != 3 {
		t.Errorf("lost = %d, want 3 (b lacks 3, 4, 5)", got)
	}
	if got := tr.foreign.Load(); got != 1 {
		t.Errorf("foreign = %d, want 1", got)
	}
	if got := tr.hist.snapshot().N; got != 7 {
		t.Errorf("latencies recorded = %d, want 7 (duplicates not timed)", got)
	}
	// Messages 1 and 2 reached both subscribers, in that order.
	var complete []uint64
	for len(tr.complete) > 0 {
		complete = append(complete, <-tr.complete)
	}
	if len(complete) != 2 || complete[0] != 1 || complete[1] != 2 {
		t.Errorf("completions = %v, want [1 2]", complete)
	}
	select {
	case <-tr.allDone:
		t.Error("allDone closed with messages missing")
	default:
	}
	for seq := uint64(3); seq <= 5; seq++ {
		tr.deliver(b, seq, ts, now)
	}
	select {
	case <-tr.allDone:
	default:
		t.Error("every message delivered but allDone is open")
	}
	if last := tr.lastReceived()[5]; last != now.UnixNano() {
		t.Errorf("last receive of 5 = %d, want %d", last, now.UnixNano())
	}
}

func TestTrackerCountsOnlySubscribersLiveAtFreeze(t *testing.T) {
	codec := newPayloadCodec("run00002")
	tr := newTracker(codec, 2, 3)
	live, late := tr.newLedger(), tr.newLedger()
	now := time.Now()
	tr.deliver(live, probeSeq, now.UnixNano(), now)
	tr.freeze() // one of three proved live

	tr.deliver(late, 1, now.UnixNano(), now) // never probed: outside the accounts
	tr.deliver(live, 1, now.UnixNano(), now)
	tr.deliver(live, 2, now.UnixNano(), now)
	if got := tr.lost(); got != 0 {
		t.Errorf("lost = %d, want 0: only the live subscriber is expected", got)
	}
	if got := tr.foreign.Load(); got != 1 {
		t.Errorf("foreign = %d, want 1 (the unprobed delivery)", got)
	}
	select {
	case <-tr.allDone:
	default:
		t.Error("the live subscriber has everything but allDone is open")
	}
}

func TestTrackerFrameFindsPayloadInEnvelope(t *testing.T) {
	codec := newPayloadCodec("run00003")
	tr := newTracker(codec, 1, 1)
	l := tr.newLedger()
	tr.frame(l, codec.encode([]byte(`{"data":"`), probeSeq, time.Now().UnixNano(), 50))
	tr.freeze()
	if !tr.frame(l, codec.encode([]byte(`{"id":"e-1","data":"`), 1, time.Now().UnixNano(), 50)) {
		t.Fatal("payload inside an envelope not found")
	}
	if tr.frame(l, []byte(`{"event":"comet.reconnect"}`)) {
		t.Error("a notice counted as a message")
	}
	if tr.lost() != 0 || tr.unique.Load() != 1 {
		t.Errorf("lost %d, unique %d; want 0 and 1", tr.lost(), tr.unique.Load())
	}
}
