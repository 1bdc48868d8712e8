// Package heldfloor is the floor of BenchmarkHTTP2Subscribers and is not
// part of the product: the least a Caddy handler can do to hold a
// subscriber. It answers GET /comet/sub/{channel} with an SSE head and a
// ": ok" comment, then waits for the client to go, writing nothing more and
// keeping nothing of its own. A push handler that delivers messages holds a
// stream for more than this, never less, so its figure is what Caddy and Go's
// HTTP/2 server cost per held stream before any handler's own.
//
// Any other request goes to the next handler.
package heldfloor

import (
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterHandlerDirective("held_floor", parseCaddyfile)
	// Before respond, so a site block needs no global `order` line.
	httpcaddyfile.RegisterDirectiveOrder("held_floor", httpcaddyfile.Before, "respond")
}

// Handler is the held_floor handler. It has no configuration.
type Handler struct{}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.held_floor",
		New: func() caddy.Module { return new(Handler) },
	}
}

// ServeHTTP holds subscribe requests and passes every other request on.
func (Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/comet/sub/") {
		return next.ServeHTTP(w, r)
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, ": ok\n\n"); err != nil {
		return nil // the client went
	}
	if err := http.NewResponseController(w).Flush(); err != nil {
		return nil
	}
	<-r.Context().Done()
	return nil
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return handler, err
}

// UnmarshalCaddyfile takes neither arguments nor a block:
//
//	held_floor
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("held_floor takes no options, got %q", d.Val())
	}
	return nil
}

// Interface guards
var (
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
