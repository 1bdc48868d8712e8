package naivefanout

import (
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(HeldFloor{})
}

// HeldFloor is the held_floor handler, the floor BenchmarkHTTP2Subscribers
// measures comet and the baseline against: the least a Caddy handler can do
// to hold a subscriber. It answers GET /comet/sub/{channel} with an SSE head
// and a ": ok" comment, then waits for the client to go, writing nothing
// more and keeping nothing of its own. A push handler that delivers messages
// holds a stream for more than this, never less, so its figure is what
// Caddy and Go's HTTP/2 server cost per held stream before any handler's
// own. Any other request goes to the next handler. It has no configuration.
type HeldFloor struct{}

// CaddyModule returns the Caddy module information.
func (HeldFloor) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.held_floor",
		New: func() caddy.Module { return new(HeldFloor) },
	}
}

// ServeHTTP holds subscribe requests and passes every other request on.
func (HeldFloor) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, prefix+"/sub/") {
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

var _ caddyhttp.MiddlewareHandler = (*HeldFloor)(nil)
