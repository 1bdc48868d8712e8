package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"strconv"
)

// A payload is what cometbench publishes and looks for in whatever framing
// the server wraps around it (SSE data line, NDJSON envelope, WebSocket
// frame, long-poll body):
//
//	cb1.<run>.<seq>.<unix-nanos>.xxxxxxxx…
//
// padded with 'x' to the requested size. Only characters that need no
// escaping in JSON, SSE or HTTP are used, so the payload appears verbatim in
// every peer's framing and a receiver finds it with one bytes.Index instead
// of decoding JSON: the client must stay cheaper per delivery than the
// server it measures. The run token keeps stale messages of another run
// (a buffer replayed on resume) out of the counts. Sequence 0 is a probe,
// used to prove every subscriber is live before measuring.
const payloadMagic = "cb1."

// probeSeq marks a probe message: not counted, not timed.
const probeSeq = 0

// newRunToken returns a short random token naming one run.
func newRunToken() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

// payloadCodec encodes and finds payloads of one run.
type payloadCodec struct {
	prefix []byte // "cb1.<run>."
}

func newPayloadCodec(run string) *payloadCodec {
	return &payloadCodec{prefix: []byte(payloadMagic + run + ".")}
}

// encode appends the payload for seq, stamped ts (unix nanoseconds), padded
// to size bytes. A size smaller than the header gives the bare header.
func (c *payloadCodec) encode(dst []byte, seq uint64, ts int64, size int) []byte {
	start := len(dst)
	dst = append(dst, c.prefix...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, '.')
	for len(dst)-start < size {
		dst = append(dst, 'x')
	}
	return dst
}

// find looks for this run's payload in frame and returns its sequence number
// and publish timestamp. ok is false when the frame holds none (heartbeats,
// notices, another run's messages).
func (c *payloadCodec) find(frame []byte) (seq uint64, ts int64, ok bool) {
	i := bytes.Index(frame, c.prefix)
	if i < 0 {
		return 0, 0, false
	}
	rest := frame[i+len(c.prefix):]
	seqU, rest, ok := parseDigits(rest)
	if !ok {
		return 0, 0, false
	}
	tsU, _, ok := parseDigits(rest)
	if !ok || tsU > 1<<62 {
		return 0, 0, false
	}
	return seqU, int64(tsU), true
}

// isForeign reports whether frame holds a cometbench payload of another run.
func (c *payloadCodec) isForeign(frame []byte) bool {
	return bytes.Contains(frame, []byte(payloadMagic)) && !bytes.Contains(frame, c.prefix)
}

// parseDigits reads a decimal number ended by '.', returning what follows
// the dot.
func parseDigits(b []byte) (n uint64, rest []byte, ok bool) {
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if i == 19 {
			return 0, nil, false // would overflow; not ours
		}
		n = n*10 + uint64(b[i]-'0')
	}
	if i == 0 || i == len(b) || b[i] != '.' {
		return 0, nil, false
	}
	return n, b[i+1:], true
}
