// Package wsframe writes a server's WebSocket frames and reads a client's
// (RFC 6455 §5), for connections served without a goroutine of their own:
// frames are built once and shared, and client input is parsed as it
// arrives, a read at a time.
package wsframe

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"unicode/utf8"
)

// Opcodes (RFC 6455 §5.2).
const (
	OpContinuation byte = 0x0
	OpText         byte = 0x1
	OpBinary       byte = 0x2
	OpClose        byte = 0x8
	OpPing         byte = 0x9
	OpPong         byte = 0xA
)

// Close codes (RFC 6455 §7.4.1).
const (
	CloseNormal          uint16 = 1000
	CloseGoingAway       uint16 = 1001
	CloseProtocolError   uint16 = 1002
	CloseUnsupportedData uint16 = 1003
	CloseNoStatus        uint16 = 1005
	CloseInvalidPayload  uint16 = 1007
	ClosePolicyViolation uint16 = 1008
	CloseTooBig          uint16 = 1009
	CloseInternalError   uint16 = 1011
	CloseServiceRestart  uint16 = 1012
)

// MaxHeaderLen is the longest header of a server's (unmasked) frame.
const MaxHeaderLen = 10

// maxControlPayload bounds a control frame's payload (RFC 6455 §5.5).
const maxControlPayload = 125

// AppendHeader appends the header of a final, unmasked frame (a server's)
// carrying length bytes of payload.
func AppendHeader(dst []byte, op byte, length int) []byte {
	dst = append(dst, 0x80|op)
	switch {
	case length <= 125:
		return append(dst, byte(length))
	case length <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(dst, 126), uint16(length))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 127), uint64(length))
	}
}

// Frame is one whole final, unmasked frame.
func Frame(op byte, payload []byte) []byte {
	b := make([]byte, 0, MaxHeaderLen+len(payload))
	return append(AppendHeader(b, op, len(payload)), payload...)
}

// CloseFrame is a close frame with a status code and a reason, cut to fit
// a control frame at a character boundary.
func CloseFrame(code uint16, reason string) []byte {
	if len(reason) > maxControlPayload-2 {
		reason = reason[:maxControlPayload-2]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	payload := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), code)
	return Frame(OpClose, append(payload, reason...))
}

// acceptGUID is the key suffix of RFC 6455 §1.3.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey is the Sec-WebSocket-Accept answer to a Sec-WebSocket-Key.
func AcceptKey(key string) string {
	sum := sha1.Sum([]byte(key + acceptGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// ValidKey reports whether a Sec-WebSocket-Key is what RFC 6455 §4.1
// requires: 16 bytes, base64-encoded.
func ValidKey(key string) bool {
	if len(key) != 24 {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(key)
	return err == nil && len(b) == 16
}

// CloseError is a reason to close: a client broke the protocol, or the
// peer closed. Code and Reason go into the close frame.
type CloseError struct {
	Code   uint16
	Reason string
}

func (e *CloseError) Error() string { return e.Reason }

// ParseClose reads a client's close frame payload: its code, or 1005 when
// there is none. A code that may not be sent, or a reason that is not
// UTF-8, is a protocol error (RFC 6455 §7.4).
func ParseClose(payload []byte) (uint16, *CloseError) {
	switch {
	case len(payload) == 0:
		return CloseNoStatus, nil
	case len(payload) == 1:
		return 0, &CloseError{CloseProtocolError, "close frame payload of one byte"}
	case !utf8.Valid(payload[2:]):
		return 0, &CloseError{CloseInvalidPayload, "close reason is not UTF-8"}
	}
	code := binary.BigEndian.Uint16(payload)
	if !sendableCloseCode(code) {
		return 0, &CloseError{CloseProtocolError, "close code may not be sent"}
	}
	return code, nil
}

// sendableCloseCode reports whether an endpoint may put code in a close
// frame: the defined codes but 1004-1006 and 1015, and the registered and
// private ranges 3000-4999.
func sendableCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
