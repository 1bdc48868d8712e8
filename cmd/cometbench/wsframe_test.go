package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// serverFrame is one unmasked frame as a server sends it.
func serverFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	switch n := len(payload); {
	case n < 126:
		return append([]byte{b0, byte(n)}, payload...)
	case n <= 0xFFFF:
		return append([]byte{b0, 126, byte(n >> 8), byte(n)}, payload...)
	default:
		panic("not needed here")
	}
}

func TestWSDecoderReadsFramesSplitAnywhere(t *testing.T) {
	long := strings.Repeat("x", 300) // a 16-bit length
	var wire []byte
	wire = append(wire, serverFrame(true, wsOpText, []byte("one"))...)
	wire = append(wire, serverFrame(true, wsOpText, []byte(long))...)
	wire = append(wire, serverFrame(false, wsOpText, []byte("fra"))...)
	wire = append(wire, serverFrame(true, wsOpPing, []byte("hb"))...) // between fragments
	wire = append(wire, serverFrame(true, wsOpContinuation, []byte("gmented"))...)
	for split := 0; split <= len(wire); split++ {
		var got []string
		var replies bytes.Buffer
		d := &wsDecoder{max: 1024, message: func(m []byte) error { got = append(got, string(m)); return nil }}
		if err := d.feed(append([]byte(nil), wire[:split]...), &replies); err != nil {
			t.Fatalf("split at %d: %v", split, err)
		}
		if err := d.feed(append([]byte(nil), wire[split:]...), &replies); err != nil {
			t.Fatalf("split at %d: %v", split, err)
		}
		if want := []string{"one", long, "fragmented"}; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("split at %d: messages %q, want %q", split, got, want)
		}
		pong := replies.Bytes()
		if len(pong) != 8 || pong[0] != 0x80|wsOpPong || pong[1] != 0x80|2 {
			t.Fatalf("split at %d: the answer to a ping is % x, want a masked 2-byte pong", split, pong)
		}
		if unmasked := []byte{pong[6] ^ pong[2], pong[7] ^ pong[3]}; string(unmasked) != "hb" {
			t.Fatalf("split at %d: pong payload %q, want the ping's", split, unmasked)
		}
	}
}

func TestWSDecoderEndsOnCloseAndRefusesBadFrames(t *testing.T) {
	cases := []struct {
		name string
		wire []byte
		want string
	}{
		{"close", serverFrame(true, wsOpClose, []byte{0x03, 0xF0, 'x'}), "closed by the server (1008)"},
		{"masked", []byte{0x81, 0x81, 1, 2, 3, 4, 'a'}, "masked"},
		{"over the limit", serverFrame(true, wsOpText, make([]byte, 200)), "over 100"},
		{"stray continuation", serverFrame(true, wsOpContinuation, []byte("x")), "continuation"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := &wsDecoder{max: 100, message: func([]byte) error { return nil }}
			err := d.feed(c.wire, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
			if c.name == "close" && !errors.Is(err, errWSClosed) {
				t.Fatalf("a close frame: %v is not errWSClosed", err)
			}
		})
	}
}

func TestWSKeyAcceptIsTheRFCs(t *testing.T) {
	key, accept := wsKey()
	if len(key) != 24 || len(accept) != 28 {
		t.Fatalf("key %q, accept %q", key, accept)
	}
	// RFC 6455 §1.3's example, through the same computation.
	if got := acceptFor("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("accept for the RFC's key: %q", got)
	}
}
