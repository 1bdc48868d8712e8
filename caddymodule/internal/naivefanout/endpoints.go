package naivefanout

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// maxBodySize bounds a published message, in bytes.
const maxBodySize = 1 << 20

// serveSubscribe holds an SSE stream of channel on the request's own
// goroutine until the client leaves or a publish drops it.
func (h *Handler) serveSubscribe(w http.ResponseWriter, r *http.Request, channel string) error {
	// Registered before ": ok" is written, so a client that has read it
	// gets everything published afterwards.
	s := h.fanout.subscribe(channel)
	defer h.fanout.unsubscribe(channel, s)

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	// retry tells the browser how soon to reconnect after being dropped
	// (WHATWG HTML §9.2.6).
	if _, err := io.WriteString(w, "retry: 2000\n: ok\n\n"); err != nil {
		return nil // the client is gone
	}
	if err := rc.Flush(); err != nil {
		return nil
	}
	for {
		select {
		case frame, ok := <-s.frames:
			if !ok {
				return nil // dropped by a publish for falling behind
			}
			if _, err := w.Write(frame); err != nil {
				return nil
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
		case <-r.Context().Done():
			return nil
		}
	}
}

// servePublish sends the request body to the subscribers of channel as one
// SSE event, encoded once for all of them.
func (h *Handler) servePublish(w http.ResponseWriter, r *http.Request, channel string) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodySize))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			return caddyhttp.Error(http.StatusRequestEntityTooLarge, fmt.Errorf("naive_fanout: read message: %w", err))
		}
		return caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("naive_fanout: read message: %w", err))
	}
	id := h.fanout.nextID()
	delivered := h.fanout.publish(channel, encodeFrame(id, body))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, "{\"id\":\"%d\",\"subscribers\":%d}\n", id, delivered)
	return nil
}

// encodeFrame is one server-sent event: `id:`, the body as `data:` lines
// and the blank line that ends the event. Each line ending in the body
// (CRLF, LF or CR, all of which end a line in WHATWG HTML §9.2.6) starts a
// new `data:` line, so a body can neither end the event early nor add
// fields to it.
func encodeFrame(id uint64, body []byte) []byte {
	frame := make([]byte, 0, 32+len(body)+len(body)/8)
	frame = append(frame, "id: "...)
	frame = strconv.AppendUint(frame, id, 10)
	frame = append(frame, '\n')
	for {
		line, rest, more := cutLine(body)
		frame = append(frame, "data: "...)
		frame = append(frame, line...)
		frame = append(frame, '\n')
		if !more {
			break
		}
		body = rest
	}
	return append(frame, '\n')
}

// cutLine splits b at its first line ending, reporting whether there was
// one.
func cutLine(b []byte) (line, rest []byte, found bool) {
	i := bytes.IndexAny(b, "\r\n")
	if i < 0 {
		return b, nil, false
	}
	rest = b[i+1:]
	if b[i] == '\r' && len(rest) > 0 && rest[0] == '\n' {
		rest = rest[1:]
	}
	return b[:i], rest, true
}
