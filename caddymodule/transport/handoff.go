package transport

import (
	"context"
	"net/http"

	"github.com/cometbox/cometbox/caddymodule/transport/direct"
)

// Handoff carries a stream set up on another goroutine back to the request
// goroutine that holds it.
//
// A stream on the handler path (HTTP/2, HTTP/3, TLS), or a long-poll that
// waits, is held by its request goroutine for as long as it lasts, and a
// goroutine keeps the largest stack it ever needed: the collector halves a
// stack only when less than a quarter of it is in use, and Caddy's handler
// chain alone parks about 4.5 KiB deep. Parsing, authorizing and
// subscribing on that goroutine took it past 8 KiB, so every held stream
// kept 16 KiB of stack. With a Handoff the setup runs on a short-lived
// goroutine whose stack goes with it, and the stream's loop (or the poll's
// wait) is handed back to the request goroutine, which runs it from a
// shallow frame.
type Handoff struct {
	hold   func() error // the stream's loop, once one was set up
	atEnd  []func()     // what the setup deferred, run when the stream ends
	asking bool         // between WithHandoff and the end of the setup
}

type handoffKey struct{}

// WithHandoff marks r so that a streaming transport on the handler path
// hands its loop over instead of running it. Call Hold, on the goroutine
// that is to hold the stream, once the setup returned.
func WithHandoff(r *http.Request) (*http.Request, *Handoff) {
	h := &Handoff{asking: true}
	return r.WithContext(context.WithValue(r.Context(), handoffKey{}, h)), h
}

// Hold runs the stream handed over, if one was, then what the setup left
// for the stream's end, in the order its defers would have run.
func (h *Handoff) Hold() error {
	h.asking = false
	var err error
	if h.hold != nil {
		err = h.hold()
	}
	for _, fn := range h.atEnd {
		fn()
	}
	return err
}

// handoffOf is r's Handoff, or nil.
func handoffOf(r *http.Request) *Handoff {
	h, _ := r.Context().Value(handoffKey{}).(*Handoff)
	return h
}

// handOver gives loop to r's Handoff and reports whether there was one to
// take it.
func handOver(r *http.Request, loop func() error) bool {
	h := handoffOf(r)
	if h == nil || !h.asking || h.hold != nil {
		return false
	}
	h.hold = loop
	return true
}

// AtStreamEnd returns, for a setup to defer, a func that runs fn: at once,
// unless r's stream was handed over, whose end then runs it. A setup's
// defers that must outlive it (a grant's deadline, a connection count)
// go through here.
func AtStreamEnd(r *http.Request, fn func()) func() {
	return func() {
		if h := handoffOf(r); h != nil && h.hold != nil && h.asking {
			h.atEnd = append(h.atEnd, fn)
			return
		}
		fn()
	}
}

// OnHandlerPath reports whether a stream for r is held by a request
// goroutine rather than taken over by the direct path.
func OnHandlerPath(r *http.Request, opts *Options) bool {
	return opts.Direct == nil || !direct.CanTake(r)
}
