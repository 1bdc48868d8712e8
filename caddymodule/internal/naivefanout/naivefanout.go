// Package naivefanout is the comparison baseline for BenchmarkHTTP2Subscribers
// and is not part of the product. It is the push handler a first Caddy
// module would be, written plainly so that the benchmark shows what comet
// gains over it: every subscriber is held by its own request goroutine, with
// the default net/http and Caddy buffers, waiting on a Go channel of frames;
// a publish encodes one SSE frame and sends it to each of those channels,
// dropping a subscriber whose channel is full instead of waiting for it.
//
// It answers under /comet, comet's default prefix, so that one client drives
// both:
//
//	GET  /comet/sub/{channel}  an SSE stream of what is published to channel
//	POST /comet/pub/{channel}  publishes the body (at most 1 MiB) as one
//	                           event; 201 {"id":"N","subscribers":K}
//
// Any other request under /comet is answered 404; requests outside it go to
// the next handler.
//
// The package also holds HeldFloor (held_floor), which holds subscribers
// and does nothing else: the floor that comet and the baseline are both
// measured against.
package naivefanout

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// prefix is fixed at comet's default, so the benchmark's subscribe and
// publish URLs are the same against both servers.
const prefix = "/comet"

// Handler is the naive_fanout handler. It has no configuration; its
// subscribers live in the handler instance, so a config reload starts
// over with none.
type Handler struct {
	fanout *fanout
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.naive_fanout",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets up the subscriber registry.
func (h *Handler) Provision(caddy.Context) error {
	h.fanout = newFanout()
	return nil
}

// ServeHTTP routes requests under the prefix to subscribe or publish and
// passes every other request to next.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rest, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return next.ServeHTTP(w, r)
	}
	action, channel, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	if channel != "" && !strings.Contains(channel, "/") {
		switch {
		case action == "sub" && r.Method == http.MethodGet:
			return h.serveSubscribe(w, r, channel)
		case action == "pub" && r.Method == http.MethodPost:
			return h.servePublish(w, r, channel)
		}
	}
	return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("naive_fanout: no route for %s %s", r.Method, r.URL.Path))
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
