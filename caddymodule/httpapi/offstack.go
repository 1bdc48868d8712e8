package httpapi

import (
	"net/http"
	"strings"

	"github.com/cometbox/cometbox/caddymodule/transport"
)

// holdsStream reports whether r asks for an SSE or NDJSON stream that its
// request goroutine will hold (HTTP/2, HTTP/3, TLS: see transport.Handoff).
func (a *API) holdsStream(r *http.Request) bool {
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, a.Prefix+"/sub/") || !transport.OnHandlerPath(r, &a.Transport) {
		return false
	}
	name, err := chooseTransport(r, r.URL.RawQuery)
	return err == nil && (name == transport.SSE || name == transport.Stream)
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
