package main

import (
	"sync"
	"sync/atomic"
	"time"
)

// tracker accounts for every delivery in one process: which subscriber saw
// which sequence number (to find losses and duplicates), latency, and when
// each message reached its last subscriber. Each subscriber owns its seen
// bitmap, so recording takes no lock; the shared parts are atomics.
type tracker struct {
	codec    *payloadCodec
	messages int // sequence numbers 1..messages are expected
	subs     int // subscribers in this process
	// expected is how many subscribers must get every message: all of
	// them until freeze, then those that proved live with a probe (one
	// that never came up is a connect failure, reported as such, not
	// a hundred losses).
	expected atomic.Int64

	hist     histogram
	unique   atomic.Int64
	dups     atomic.Int64
	foreign  atomic.Int64   // payloads of another run, or beyond messages
	resets   atomic.Int64   // comet.reset notices: history the server lost
	lastRecv []atomic.Int64 // by seq: unix nanos of the latest delivery
	// firstRecv is the earliest delivery of each seq: with lastRecv and
	// the publish stamps it shows the serial parts of a run with one
	// message in flight (how long the server takes to start a fan-out,
	// how long the publisher waits between messages).
	firstRecv []atomic.Int64
	perSeq    []atomic.Int32 // by seq: subscribers that have it

	// complete receives each seq once every subscriber here has it; the
	// publisher's window waits on it. Buffered for every seq: never blocks.
	complete chan uint64
	probed   atomic.Int64
	allProbe chan struct{} // closed when every subscriber has seen a probe
	allDone  chan struct{} // closed when every subscriber has every message
	doneOnce sync.Once
	probOnce sync.Once
}

func newTracker(codec *payloadCodec, messages, subs int) *tracker {
	t := &tracker{
		codec:     codec,
		messages:  messages,
		subs:      subs,
		lastRecv:  make([]atomic.Int64, messages+1),
		firstRecv: make([]atomic.Int64, messages+1),
		perSeq:    make([]atomic.Int32, messages+1),
		complete:  make(chan uint64, messages+1),
		allProbe:  make(chan struct{}),
		allDone:   make(chan struct{}),
	}
	t.expected.Store(int64(subs))
	if subs == 0 {
		t.probOnce.Do(func() { close(t.allProbe) })
	}
	if subs == 0 || messages == 0 {
		t.doneOnce.Do(func() { close(t.allDone) })
	}
	return t
}

// freeze ends the probe phase: from now on only the subscribers that saw a
// probe are expected to receive every message. It is called before the
// first message is published.
func (t *tracker) freeze() {
	n := t.probed.Load()
	t.expected.Store(n)
	if n == 0 {
		t.doneOnce.Do(func() { close(t.allDone) })
	}
}

// subLedger is one subscriber's record of what it has seen.
type subLedger struct {
	seen   []uint64 // bitmap by seq
	probed bool
}

func (t *tracker) newLedger() *subLedger {
	return &subLedger{seen: make([]uint64, t.messages/64+1)}
}

// frame looks for a payload in one received frame and records it. It
// returns whether the frame held one of this run's messages.
func (t *tracker) frame(l *subLedger, frame []byte) bool {
	seq, ts, ok := t.codec.find(frame)
	if !ok {
		if t.codec.isForeign(frame) {
			t.foreign.Add(1)
		}
		return false
	}
	t.deliver(l, seq, ts, time.Now())
	return true
}

// deliver records that the subscriber of l received seq, published at ts.
func (t *tracker) deliver(l *subLedger, seq uint64, ts int64, now time.Time) {
	if seq == probeSeq {
		if !l.probed {
			l.probed = true
			if t.probed.Add(1) == int64(t.subs) {
				t.probOnce.Do(func() { close(t.allProbe) })
			}
		}
		return
	}
	if seq > uint64(t.messages) || !l.probed {
		// Not this run's, or a subscriber that was not live when the
		// run froze: outside the accounts.
		t.foreign.Add(1)
		return
	}
	word, bit := seq/64, uint64(1)<<(seq%64)
	if l.seen[word]&bit != 0 {
		t.dups.Add(1)
		return
	}
	l.seen[word] |= bit
	nanos := now.UnixNano()
	t.hist.record(time.Duration(nanos - ts))
	last := &t.lastRecv[seq]
	for {
		v := last.Load()
		if nanos <= v || last.CompareAndSwap(v, nanos) {
			break
		}
	}
	first := &t.firstRecv[seq]
	for {
		v := first.Load()
		if v != 0 && v <= nanos || first.CompareAndSwap(v, nanos) {
			break
		}
	}
	expected := t.expected.Load()
	if int64(t.perSeq[seq].Add(1)) == expected {
		t.complete <- seq
	}
	if t.unique.Add(1) == expected*int64(t.messages) {
		t.doneOnce.Do(func() { close(t.allDone) })
	}
}

// lost is how many (subscriber, message) pairs never arrived.
func (t *tracker) lost() int64 {
	return t.expected.Load()*int64(t.messages) - t.unique.Load()
}

// lastReceived copies the per-message last delivery times (index = seq).
func (t *tracker) lastReceived() []int64 { return loadAll(t.lastRecv) }

// firstReceived copies the per-message first delivery times.
func (t *tracker) firstReceived() []int64 { return loadAll(t.firstRecv) }

func loadAll(values []atomic.Int64) []int64 {
	out := make([]int64, len(values))
	for i := range values {
		out[i] = values[i].Load()
	}
	return out
}
