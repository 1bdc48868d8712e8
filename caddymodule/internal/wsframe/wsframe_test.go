package wsframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// clientFrame builds a masked frame as a browser sends it.
func clientFrame(first byte, payload []byte, mask [4]byte) []byte {
	b := []byte{first}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i&3])
	}
	return b
}

var someMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

type event struct {
	op      byte
	payload string
}

// feedInPieces feeds input in pieces of size n and collects what it yields.
func feedInPieces(t *testing.T, r *Reader, input []byte, n int) ([]event, error) {
	t.Helper()
	input = bytes.Clone(input) // Feed unmasks in place
	var got []event
	handle := func(op byte, payload []byte) error {
		got = append(got, event{op, string(payload)})
		return nil
	}
	for len(input) > 0 {
		piece := input[:min(n, len(input))]
		input = input[len(piece):]
		if err := r.Feed(piece, handle); err != nil {
			return got, err
		}
	}
	return got, nil
}

func TestReaderYieldsMessagesWhateverPiecesTheyArriveIn(t *testing.T) {
	long := strings.Repeat("x", 70000)
	medium := strings.Repeat("y", 300)
	var input []byte
	input = append(input, clientFrame(0x80|OpText, []byte(`{"op":"ack"}`), someMask)...)
	input = append(input, clientFrame(0x80|OpText, []byte(medium), someMask)...)
	input = append(input, clientFrame(0x80|OpText, []byte(long), someMask)...)
	// A fragmented message with a ping between its fragments.
	input = append(input, clientFrame(OpText, []byte("hel"), someMask)...)
	input = append(input, clientFrame(0x80|OpPing, []byte("are you there"), someMask)...)
	input = append(input, clientFrame(OpContinuation, []byte("lo, "), someMask)...)
	input = append(input, clientFrame(0x80|OpContinuation, []byte("wörld"), someMask)...)
	input = append(input, clientFrame(0x80|OpClose, []byte{0x03, 0xe8}, someMask)...)
	want := []event{
		{OpText, `{"op":"ack"}`},
		{OpText, medium},
		{OpText, long},
		{OpPing, "are you there"},
		{OpText, "hello, wörld"},
		{OpClose, "\x03\xe8"},
	}
	for _, piece := range []int{1, 2, 3, 7, 125, 4096, len(input)} {
		t.Run(fmt.Sprint(piece), func(t *testing.T) {
			r := &Reader{MaxMessage: 1 << 20}
			got, err := feedInPieces(t, r, input, piece)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d events, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("event %d: got op %#x %.40q, want op %#x %.40q", i, got[i].op, got[i].payload, want[i].op, want[i].payload)
				}
			}
			if r.partial != nil || r.message != nil {
				t.Errorf("reader holds %d + %d bytes between messages, want none", len(r.partial), len(r.message))
			}
		})
	}
}

func TestReaderRefusesWhatTheProtocolForbids(t *testing.T) {
	tests := []struct {
		name  string
		input []byte
		code  uint16
	}{
		{"unmasked frame", []byte{0x81, 0x02, 'h', 'i'}, CloseProtocolError},
		{"reserved bit (compression not agreed)", clientFrame(0xC0|OpText, []byte("hi"), someMask), CloseProtocolError},
		{"unknown opcode", clientFrame(0x80|0x3, []byte("hi"), someMask), CloseProtocolError},
		{"fragmented control frame", clientFrame(OpPing, []byte("hi"), someMask), CloseProtocolError},
		{"control frame over 125 bytes", clientFrame(0x80|OpPing, bytes.Repeat([]byte("p"), 126), someMask), CloseProtocolError},
		{"continuation outside a message", clientFrame(0x80|OpContinuation, []byte("hi"), someMask), CloseProtocolError},
		{"new message inside a message", append(clientFrame(OpText, []byte("a"), someMask), clientFrame(0x80|OpText, []byte("b"), someMask)...), CloseProtocolError},
		{"message too big", clientFrame(0x80|OpText, bytes.Repeat([]byte("m"), 1025), someMask), CloseTooBig},
		{"fragments too big together", append(clientFrame(OpText, bytes.Repeat([]byte("m"), 600), someMask), clientFrame(0x80|OpContinuation, bytes.Repeat([]byte("m"), 600), someMask)...), CloseTooBig},
		{"text not UTF-8", clientFrame(0x80|OpText, []byte{0xff, 0xfe}, someMask), CloseInvalidPayload},
		{"huge declared length", append([]byte{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, someMask[:]...), CloseTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Reader{MaxMessage: 1024}
			_, err := feedInPieces(t, r, tt.input, len(tt.input))
			var closeErr *CloseError
			if !errors.As(err, &closeErr) {
				t.Fatalf("got %v, want a close error", err)
			}
			if closeErr.Code != tt.code {
				t.Errorf("got code %d (%s), want %d", closeErr.Code, closeErr.Reason, tt.code)
			}
		})
	}
}

func TestReaderRefusesAnOversizedFrameOnItsHeader(t *testing.T) {
	r := &Reader{MaxMessage: 1024}
	header := clientFrame(0x80|OpText, bytes.Repeat([]byte("m"), 5000), someMask)[:8]
	err := r.Feed(header, func(byte, []byte) error { return nil })
	var closeErr *CloseError
	if !errors.As(err, &closeErr) || closeErr.Code != CloseTooBig {
		t.Fatalf("got %v, want 1009 before the payload arrives", err)
	}
}

func TestServerFramesAreWhatAClientParses(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte("s"), n)
		frame := Frame(OpText, payload)
		// Mask it as a client would, and read it back.
		masked := append([]byte{frame[0], frame[1] | 0x80}, frame[2:len(frame)-n]...)
		masked = append(masked, 0, 0, 0, 0)
		masked = append(masked, payload...)
		r := &Reader{MaxMessage: 1 << 20}
		got, err := feedInPieces(t, r, masked, len(masked))
		if err != nil || len(got) != 1 || got[0].op != OpText || len(got[0].payload) != n {
			t.Errorf("length %d: got %v, %v", n, got, err)
		}
	}
}

func TestCloseFrameFitsAControlFrame(t *testing.T) {
	frame := CloseFrame(CloseGoingAway, strings.Repeat("é", 100))
	if frame[0] != 0x80|OpClose || int(frame[1]) != len(frame)-2 || frame[1] > 125 {
		t.Fatalf("close frame header %x, length %d", frame[:2], len(frame))
	}
	code, err := ParseClose(frame[2:])
	if err != nil || code != CloseGoingAway {
		t.Fatalf("got %d, %v", code, err)
	}
}

func TestParseCloseChecksCodeAndReason(t *testing.T) {
	tests := []struct {
		payload []byte
		code    uint16
		fail    bool
	}{
		{nil, CloseNoStatus, false},
		{[]byte{0x03, 0xe8, 'o', 'k'}, CloseNormal, false},
		{[]byte{0x0f, 0xa0}, 4000, false},
		{[]byte{0x03}, 0, true},
		{[]byte{0x03, 0xed}, 0, true}, // 1005 may not be sent
		{[]byte{0x03, 0xe8, 0xff}, 0, true},
		{[]byte{0x00, 0x10}, 0, true},
	}
	for _, tt := range tests {
		code, err := ParseClose(tt.payload)
		if (err != nil) != tt.fail || !tt.fail && code != tt.code {
			t.Errorf("ParseClose(%x) = %d, %v", tt.payload, code, err)
		}
	}
}

func TestAcceptKeyIsRFC6455Example(t *testing.T) {
	// RFC 6455 §1.3.
	if got := AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("got %s", got)
	}
	if !ValidKey("dGhlIHNhbXBsZSBub25jZQ==") || ValidKey("c2hvcnQ=") || ValidKey("") {
		t.Fatal("ValidKey misjudges a key")
	}
}

// FuzzReader feeds arbitrary bytes in two pieces: whatever they are, the
// reader returns rather than panics, and the same bytes fed whole or split
// yield the same messages.
func FuzzReader(f *testing.F) {
	f.Add(clientFrame(0x80|OpText, []byte(`{"op":"ack"}`), someMask), 3)
	f.Add(append(clientFrame(OpText, []byte("a"), someMask), clientFrame(0x80|OpContinuation, []byte("b"), someMask)...), 7)
	f.Add([]byte{0x81, 0xfe, 0x00, 0x7e}, 2)
	f.Fuzz(func(t *testing.T, input []byte, split int) {
		whole, wholeErr := feedInPieces(t, &Reader{MaxMessage: 4096}, input, len(input)+1)
		if split < 1 {
			split = 1
		}
		pieces, piecesErr := feedInPieces(t, &Reader{MaxMessage: 4096}, input, split)
		if (wholeErr == nil) != (piecesErr == nil) || len(whole) != len(pieces) {
			t.Fatalf("whole: %d events, %v; in pieces of %d: %d events, %v", len(whole), wholeErr, split, len(pieces), piecesErr)
		}
		for i := range whole {
			if whole[i] != pieces[i] {
				t.Fatalf("event %d differs", i)
			}
		}
	})
}
