package main

import (
	"strings"
	"testing"
)

func TestPayloadRoundTripsThroughAnyFraming(t *testing.T) {
	c := newPayloadCodec("ab12cd34")
	for _, tc := range []struct {
		name string
		seq  uint64
		ts   int64
		size int
		wrap func(string) string
	}{
		{"bare", 1, 1732150000123456789, 100, func(p string) string { return p }},
		{"sse data line", 42, 1, 100, func(p string) string { return "id: k-42\ndata: " + p + "\n\n" }},
		{"cometbox envelope", 7, 99, 4096, func(p string) string {
			return `{"id":"k3f9-7","channel":"bench","type":"text/plain","data":"` + p + `","time":1}`
		}},
		{"smaller than header", 3, 5, 0, func(p string) string { return p }},
		{"probe", probeSeq, 5, 100, func(p string) string { return p }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := c.encode(nil, tc.seq, tc.ts, tc.size)
			if tc.size > 40 && len(p) != tc.size {
				t.Errorf("len = %d, want %d", len(p), tc.size)
			}
			if strings.ContainsAny(string(p), "\"\\\n\r<>&") {
				t.Errorf("payload %q holds a character some framing would escape", p)
			}
			seq, ts, ok := c.find([]byte(tc.wrap(string(p))))
			if !ok || seq != tc.seq || ts != tc.ts {
				t.Errorf("find = %d, %d, %v; want %d, %d, true", seq, ts, ok, tc.seq, tc.ts)
			}
		})
	}
}

func TestPayloadFindRejectsOtherRunsAndGarbage(t *testing.T) {
	mine := newPayloadCodec("11111111")
	other := newPayloadCodec("22222222")
	foreign := other.encode(nil, 5, 10, 100)
	if _, _, ok := mine.find(foreign); ok {
		t.Error("found another run's payload")
	}
	if !mine.isForeign(foreign) {
		t.Error("another run's payload not reported as foreign")
	}
	for _, frame := range []string{
		"",
		": heartbeat",
		"cb1.11111111.",
		"cb1.11111111.12",
		"cb1.11111111.12.",
		"cb1.11111111.x.5.",
		"cb1.11111111.5..",
		"cb1.11111111.99999999999999999999999.5.",
		`{"event":"comet.reconnect"}`,
	} {
		if seq, ts, ok := mine.find([]byte(frame)); ok {
			t.Errorf("find(%q) = %d, %d, true; want not found", frame, seq, ts)
		}
	}
}

func TestRunTokensDiffer(t *testing.T) {
	a, b := newRunToken(), newRunToken()
	if a == b || len(a) != 8 {
		t.Errorf("tokens %q and %q: want two different 8-character tokens", a, b)
	}
}
