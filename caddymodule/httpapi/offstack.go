package httpapi

import (
	"net/http"
	"strings"

	"github.com/cometbox/cometbox/caddymodule/internal/urlquery"
	"github.com/cometbox/cometbox/caddymodule/transport"
)

// mayBeHeld reports whether r asks for an SSE or NDJSON stream, or a
// long-poll that may wait, that its request goroutine would hold: on
// HTTP/2, HTTP/3 or TLS, or with direct delivery off (see
// transport.Handoff). A long-poll over plain HTTP/1.1 is not handed off:
// most are answered at once from history, and the hand-off would cost
// each of those a goroutine start.
func (a *API) mayBeHeld(r *http.Request) bool {
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, a.Prefix+"/sub/") || !transport.OnHandlerPath(r, &a.Transport) {
		return false
	}
	switch name, err := chooseTransport(r, r.URL.RawQuery); {
	case err != nil:
		return false
	case name == transport.LongPoll:
		// One that asks not to wait is answered at once.
		return urlquery.Get(r.URL.RawQuery, "wait") != "0"
	default:
		return name == transport.SSE || name == transport.Stream
	}
}

// serveOffStack sets a held stream up on a goroutine of its own, which
// ends with the setup, and holds the stream on the request goroutine from
// here, a shallow frame: so the goroutine that lives as long as the stream
// keeps the smallest stack Caddy's chain allows (8 KiB, not 16). A panic
// in the setup is raised again here, where Caddy's handler expects it.
func (a *API) serveOffStack(w http.ResponseWriter, r *http.Request) error {
	r, handoff := transport.WithHandoff(r)
	type outcome struct {
		err      error
		panicked any
	}
	done := make(chan outcome, 1)
	go func() {
		var o outcome
		defer func() {
			o.panicked = recover()
			done <- o
		}()
		o.err = a.serve(w, r)
	}()
	o := <-done
	if o.panicked != nil {
		panic(o.panicked)
	}
	if err := handoff.Hold(); err != nil {
		return err
	}
	return o.err
}
