package transport

import (
	"testing"

	"github.com/cometbox/cometbox/caddymodule/message"
)

// FuzzClientFrame feeds arbitrary WebSocket text frames to the decoder:
// nothing panics, and what it accepts is safe to act on.
func FuzzClientFrame(f *testing.F) {
	for _, s := range []string{
		`{"op":"subscribe","channel":"a","last_id":"k-1"}`,
		`{"op":"unsubscribe","channel":"a"}`,
		`{"op":"ack","last_id":"earliest"}`,
		`{"op":"message","data":{"x":1},"ref":"r"}`,
		`{"op":"subscribe","channel":"../x"}`,
		`[]`, `{"op":1}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		frame, ferr := decodeClientFrame(data)
		if ferr != nil {
			if ferr.status < 400 || ferr.status > 499 || ferr.reason == "" {
				t.Fatalf("refusal %+v", ferr)
			}
			return
		}
		if len(frame.Ref) > maxRefLen {
			t.Fatalf("ref of %d bytes accepted", len(frame.Ref))
		}
		switch frame.Op {
		case "subscribe", "unsubscribe":
			if message.ValidateChannel(frame.Channel) != nil {
				t.Fatalf("channel %q accepted", frame.Channel)
			}
		case "ack", "message":
		default:
			t.Fatalf("op %q accepted", frame.Op)
		}
	})
}
