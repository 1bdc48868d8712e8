// Package httpapi answers the requests under a comet prefix (SPEC §2):
// subscribe, publish, channel info and delete. It is plain net/http over a
// hub.Hub; the Caddy module routes `{prefix}/*` here and everything else to
// the next handler.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cometbox/cometbox/caddymodule/auth"
	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/store"
	"github.com/cometbox/cometbox/caddymodule/transport"
)

// API serves one comet prefix.
type API struct {
	Hub       *hub.Hub
	Prefix    string
	Transport transport.Options
	Publish   PublishPolicy
	// MaxBodySize bounds a publish body, in bytes.
	MaxBodySize int64
	// MaxChannels bounds the channels of one subscription.
	MaxChannels int
	// ClientIP tells who sent a request; the Caddy module supplies one that
	// honours trusted proxies. When nil, the connection's peer address is
	// used.
	ClientIP func(*http.Request) netip.Addr
	Logger   *zap.Logger
	Counters *Counters
	// Auth decides who may subscribe to what; nil leaves every channel open.
	Auth *auth.Policy
	// CORS answers cross-origin subscribers.
	CORS CORS
	// Connections bounds subscriber connections per client address; it
	// outlives reloads with the hub.
	Connections *ConnectionLimiter
}

// Error is an answer before the first byte: a status and the reason the
// client is told.
type Error struct {
	Status int
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Err: fmt.Errorf(format, args...)}
}

// ServeHTTP answers a request under the prefix. Client errors are answered
// with a JSON body that says what was wrong, since the callers are programs
// (a PHP publisher, the JS client) that must be able to report it; the
// returned error is nil then. Only failures after the first byte are
// returned, for the caller to log.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	if a.mayBeHeld(r) {
		return a.serveOffStack(w, r)
	}
	return a.serve(w, r)
}

// serve routes r and answers client errors.
func (a *API) serve(w http.ResponseWriter, r *http.Request) error {
	err := a.route(w, r)
	var apiErr *Error
	if errors.As(err, &apiErr) {
		a.logRefusal(r, apiErr)
		WriteError(w, apiErr)
		return nil
	}
	return err
}

func (a *API) route(w http.ResponseWriter, r *http.Request) error {
	rest, ok := strings.CutPrefix(r.URL.Path, a.Prefix+"/")
	if !ok {
		return errorf(http.StatusNotFound, "no such comet endpoint: %s", r.URL.Path)
	}
	switch {
	case rest == "client.js":
		return a.serveClient(w, r)
	case strings.HasPrefix(rest, "sub/"):
		return a.serveSubscribe(w, r, strings.TrimPrefix(rest, "sub/"))
	case rest == "pub":
		return a.servePublishBatch(w, r)
	case strings.HasPrefix(rest, "pub/"):
		return a.serveChannel(w, r, strings.TrimPrefix(rest, "pub/"))
	}
	return errorf(http.StatusNotFound, "no such comet endpoint: %s", r.URL.Path)
}

// WriteError answers an *Error as {"error": reason} with its status.
func WriteError(w http.ResponseWriter, e *Error) {
	body, _ := json.Marshal(map[string]string{"error": e.Err.Error()})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	_, _ = w.Write(append(body, '\n'))
}

func (a *API) logRefusal(r *http.Request, e *Error) {
	level := zapcore.DebugLevel
	switch {
	case errors.Is(e.Err, store.ErrUnavailable):
		// The store logs an outage once, and its end; a line per refused
		// request would bury that.
	case e.Status >= 500:
		level = zapcore.ErrorLevel
	case e.Status == 401 || e.Status == 403 || e.Status == 413 || e.Status == 429:
		// Refusals by policy or limit say what and who, at a level an
		// operator sees by default.
		level = zapcore.InfoLevel
	}
	if c := a.Logger.Check(level, "comet request refused"); c != nil {
		c.Write(
			zap.Int("status", e.Status),
			zap.String("method", r.Method),
			zap.String("path", r.URL.Path),
			zap.Stringer("client_ip", a.clientIP(r)),
			zap.Error(e.Err),
		)
	}
}

func (a *API) clientIP(r *http.Request) netip.Addr {
	if a.ClientIP != nil {
		return a.ClientIP(r)
	}
	return PeerAddr(r)
}

// PeerAddr is the address of the connection's peer.
func PeerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func allow(w http.ResponseWriter, methods string) *Error {
	w.Header().Set("Allow", methods)
	return errorf(http.StatusMethodNotAllowed, "method not allowed here; use %s", methods)
}
