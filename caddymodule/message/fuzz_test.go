package message

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"", "earliest", "k3f9-1842", "a-0", "abc-18446744073709551615", "x--1", "é-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			return
		}
		// Whatever parses prints as a cursor that parses back to it
		// (leading zeros in seq are accepted and dropped).
		again, err := ParseCursor(c.String())
		if err != nil || again != c {
			t.Fatalf("ParseCursor(%q) = %v, printed %q, parsed again %v, %v", s, c, c.String(), again, err)
		}
	})
}

func FuzzParseChannelList(f *testing.F) {
	for _, s := range []string{"a", "a,b,a", "user.1/x,..", "a,,b", strings.Repeat("c,", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		channels, err := ParseChannelList(s, 32)
		if err != nil {
			return
		}
		if len(channels) == 0 || len(channels) > 32 {
			t.Fatalf("%d channels", len(channels))
		}
		seen := map[string]bool{}
		for _, ch := range channels {
			if ValidateChannel(ch) != nil || seen[ch] {
				t.Fatalf("channel %q invalid or repeated", ch)
			}
			seen[ch] = true
		}
	})
}

// FuzzEnvelope checks that whatever a publisher sends, an accepted message
// is one JSON line and one SSE event: nothing can split or inject.
func FuzzEnvelope(f *testing.F) {
	f.Add("chat", "say", "text/plain", []byte("hi\n\ndata: x\n\n"))
	f.Add("c", "", "application/json", []byte(`{"a":[1,2,{"b":"\n"}]}`))
	f.Fuzz(func(t *testing.T, channel, event, typ string, data []byte) {
		d := Draft{Channel: channel, Event: event, Type: typ, Data: data}
		if d.Normalize() != nil {
			return
		}
		m := New(Cursor{"e", 1}, d, time.Unix(0, 0))
		if bytes.IndexByte(m.Envelope(), '\n') >= 0 || bytes.IndexByte(m.Envelope(), '\r') >= 0 || !json.Valid(m.Envelope()) {
			t.Fatalf("envelope %q", m.Envelope())
		}
		// One SSE event: exactly one blank line, at the very end.
		sse := string(m.SSE())
		if strings.Index(sse, "\n\n") != len(sse)-2 || strings.Contains(sse, "\r") {
			t.Fatalf("SSE event %q", sse)
		}
	})
}
