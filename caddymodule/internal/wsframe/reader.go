package wsframe

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Reader parses what a client sends, whatever pieces it arrives in. It
// keeps only the bytes of an unfinished frame and the fragments of an
// unfinished message, both bounded by MaxMessage: between messages it
// holds nothing.
type Reader struct {
	// MaxMessage bounds one message, all its fragments together, in bytes.
	MaxMessage int

	partial []byte // an unfinished frame, from its first byte
	message []byte // fragments of an unfinished message
	msgOp   byte   // its opcode; 0 when none is open
}

// Handler is given each whole message (text or binary, its fragments
// joined) and each control frame. The payload is only valid during the
// call. An error stops the parse and is returned by Feed.
type Handler func(op byte, payload []byte) error

// Feed parses data, which it may unmask in place, and calls handle for
// each message and control frame it completes. A *CloseError reports a
// client that broke the protocol; the connection must be closed with it.
func (r *Reader) Feed(data []byte, handle Handler) error {
	buffered := len(r.partial) > 0
	if buffered {
		r.partial = append(r.partial, data...)
		data = r.partial
	}
	for len(data) > 0 {
		n, err := r.frame(data, handle)
		if err != nil {
			r.partial = nil
			return err
		}
		if n == 0 {
			break // unfinished frame
		}
		data = data[n:]
	}
	switch {
	case len(data) == 0:
		r.partial = nil
	case buffered:
		r.partial = append(r.partial[:0], data...) // the rest, moved to the front
	default:
		r.partial = append([]byte(nil), data...)
	}
	return nil
}

// frame parses the frame at the start of data, and reports how many bytes
// it took: 0 if data does not hold all of it yet.
func (r *Reader) frame(data []byte, handle Handler) (int, error) {
	if len(data) < 2 {
		return 0, nil
	}
	fin := data[0]&0x80 != 0
	op := data[0] & 0x0F
	if data[0]&0x70 != 0 {
		return 0, &CloseError{CloseProtocolError, "reserved bits set: no extension was agreed"}
	}
	if data[1]&0x80 == 0 {
		return 0, &CloseError{CloseProtocolError, "client frames must be masked"}
	}
	length, at := uint64(data[1]&0x7F), 2
	switch length {
	case 126:
		if len(data) < 4 {
			return 0, nil
		}
		length, at = uint64(binary.BigEndian.Uint16(data[2:])), 4
	case 127:
		if len(data) < 10 {
			return 0, nil
		}
		length, at = binary.BigEndian.Uint64(data[2:]), 10
	}
	if err := r.check(op, fin, length); err != nil {
		return 0, err
	}
	end := at + 4 + int(length) // checked against MaxMessage, so no overflow
	if len(data) < end {
		return 0, nil
	}
	mask := data[at : at+4]
	payload := data[at+4 : end]
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	return end, r.deliver(op, fin, payload, handle)
}

// check refuses a frame on its header, before its payload is buffered.
func (r *Reader) check(op byte, fin bool, length uint64) error {
	switch op {
	case OpClose, OpPing, OpPong:
		if !fin || length > maxControlPayload {
			return &CloseError{CloseProtocolError, "control frames must be whole and at most 125 bytes"}
		}
		return nil
	case OpText, OpBinary:
		if r.msgOp != 0 {
			return &CloseError{CloseProtocolError, "new message before the last one ended"}
		}
	case OpContinuation:
		if r.msgOp == 0 {
			return &CloseError{CloseProtocolError, "continuation frame outside a message"}
		}
	default:
		return &CloseError{CloseProtocolError, fmt.Sprintf("unknown opcode %#x", op)}
	}
	if length > uint64(r.MaxMessage) || uint64(len(r.message))+length > uint64(r.MaxMessage) {
		return &CloseError{CloseTooBig, fmt.Sprintf("message larger than %d bytes", r.MaxMessage)}
	}
	return nil
}

// deliver hands a control frame on at once, and a message once its last
// fragment is in.
func (r *Reader) deliver(op byte, fin bool, payload []byte, handle Handler) error {
	if op >= OpClose {
		return handle(op, payload)
	}
	if op != OpContinuation {
		r.msgOp = op
	}
	if !fin {
		r.message = append(r.message, payload...)
		return nil
	}
	whole := payload
	if len(r.message) > 0 {
		whole = append(r.message, payload...)
	}
	op, r.msgOp, r.message = r.msgOp, 0, nil
	if op == OpText && !utf8.Valid(whole) {
		return &CloseError{CloseInvalidPayload, "text message is not UTF-8"}
	}
	return handle(op, whole)
}
