package main

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The client side of RFC 6455 framing, as small as the load generator
// needs: it reads a server's unmasked frames as they arrive, a read at a
// time, and answers pings. Held WebSockets are read by the poller like
// SSE streams, so that the client's cost per delivery stays a read(2) and
// a parse, not a goroutine's wake-up: with a goroutine per socket the
// client, not the server, set the pace of a WebSocket fan-out.

const (
	wsOpContinuation = 0x0
	wsOpText         = 0x1
	wsOpBinary       = 0x2
	wsOpClose        = 0x8
	wsOpPing         = 0x9
	wsOpPong         = 0xA
)

// errWSClosed is a close frame from the server.
var errWSClosed = errors.New("websocket: closed by the server")

// wsDecoder cuts a server's byte stream into messages. A message whose
// frames all came in one read is handed over without a copy.
type wsDecoder struct {
	message   func([]byte) error // one complete text or binary message
	max       int                // the longest message accepted
	partial   []byte             // a frame cut by the end of a read
	fragments []byte             // a fragmented message so far
	inMessage bool
}

// feed decodes b; w takes the pongs that answer pings.
func (d *wsDecoder) feed(b []byte, w io.Writer) error {
	if len(d.partial) > 0 {
		d.partial = append(d.partial, b...)
		b = d.partial
	}
	for {
		fin, op, payload, size, err := d.frame(b)
		if err != nil {
			return err
		}
		if size == 0 {
			break // incomplete
		}
		if err := d.handle(fin, op, payload, w); err != nil {
			return err
		}
		b = b[size:]
	}
	// Keep the tail; it may sit in d.partial itself.
	d.partial = append(d.partial[:0], b...)
	return nil
}

// frame parses the frame at the start of b: size is 0 while b holds only
// part of it.
func (d *wsDecoder) frame(b []byte) (fin bool, op byte, payload []byte, size int, err error) {
	if len(b) < 2 {
		return false, 0, nil, 0, nil
	}
	fin, op = b[0]&0x80 != 0, b[0]&0x0F
	if b[1]&0x80 != 0 {
		return false, 0, nil, 0, errors.New("websocket: a server frame is masked")
	}
	head, length := 2, uint64(b[1]&0x7F)
	switch length {
	case 126:
		if len(b) < 4 {
			return false, 0, nil, 0, nil
		}
		head, length = 4, uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		if len(b) < 10 {
			return false, 0, nil, 0, nil
		}
		head, length = 10, binary.BigEndian.Uint64(b[2:])
	}
	if length > uint64(d.max) {
		return false, 0, nil, 0, fmt.Errorf("websocket: a %d-byte frame, over %d", length, d.max)
	}
	if uint64(len(b)-head) < length {
		return false, 0, nil, 0, nil
	}
	size = head + int(length)
	return fin, op, b[head:size], size, nil
}

func (d *wsDecoder) handle(fin bool, op byte, payload []byte, w io.Writer) error {
	switch op {
	case wsOpPing:
		_, err := w.Write(clientFrame(wsOpPong, payload))
		return err
	case wsOpPong:
		return nil
	case wsOpClose:
		code := 0
		if len(payload) >= 2 {
			code = int(binary.BigEndian.Uint16(payload))
		}
		return fmt.Errorf("%w (%d)", errWSClosed, code)
	case wsOpText, wsOpBinary:
		if fin {
			return d.message(payload)
		}
		d.fragments, d.inMessage = append(d.fragments[:0], payload...), true
		return nil
	case wsOpContinuation:
		if !d.inMessage {
			return errors.New("websocket: a continuation frame outside a message")
		}
		if len(d.fragments)+len(payload) > d.max {
			return fmt.Errorf("websocket: a message over %d bytes", d.max)
		}
		d.fragments = append(d.fragments, payload...)
		if !fin {
			return nil
		}
		d.inMessage = false
		return d.message(d.fragments)
	}
	return fmt.Errorf("websocket: opcode %#x", op)
}

// clientFrame is one final frame as a client sends it: masked (RFC 6455
// §5.3). Only short control frames are sent here.
func clientFrame(op byte, payload []byte) []byte {
	f := make([]byte, 6, 6+len(payload))
	f[0], f[1] = 0x80|op, 0x80|byte(len(payload))
	_, _ = rand.Read(f[2:6])
	for i, c := range payload {
		f = append(f, c^f[2+i%4])
	}
	return f
}

// wsKey is a fresh Sec-WebSocket-Key, and the Sec-WebSocket-Accept that
// proves a server read it (RFC 6455 §4.2.2).
func wsKey() (key, accept string) {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key = base64.StdEncoding.EncodeToString(nonce[:])
	return key, acceptFor(key)
}

func acceptFor(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}
