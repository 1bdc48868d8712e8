// Package transport serves subscribers over plain HTTP: long-poll, SSE and
// NDJSON streaming. Each held connection is served by its own request
// goroutine, which drains a bounded hub.Queue; the hub, not the transport,
// runs the fan-out. Every loop selects on the request's context, the
// handler's unload signal and its own timers (SPEC §4).
package transport

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/transport/direct"
)

// Names accepted by ?transport=.
const (
	LongPoll  = "longpoll"
	SSE       = "sse"
	Stream    = "stream"
	WebSocket = "ws"
)

// Options are the transport settings of one handler.
type Options struct {
	// LongPollTimeout is the longest a long-poll is held.
	LongPollTimeout time.Duration
	// Heartbeat is the interval of SSE comments and NDJSON empty lines.
	Heartbeat time.Duration
	// WriteTimeout bounds one write to a subscriber: a batch of frames on
	// a stream, one WebSocket frame. A client that takes nothing for this
	// long is cut, so a stalled one cannot hold its request goroutine; it
	// resumes by cursor.
	WriteTimeout time.Duration
	// SSERetry is the reconnection delay an SSE client is told to use.
	SSERetry time.Duration
	// StreamMaxBytes ends an NDJSON stream once this much was written, so an
	// XHR's responseText cannot grow without bound.
	StreamMaxBytes int64
	// CloseDelay is how long held connections live on after Unload closes;
	// each adds a random jitter of up to the same again, so clients do not
	// all reconnect at once.
	CloseDelay time.Duration
	// Unload is closed when the handler serving these connections is
	// unloaded (config reload or shutdown).
	Unload <-chan struct{}
	// WebSocket configures the WebSocket transport.
	WebSocket WebSocketOptions
	// ClientAddr tells the client's address, for X-Forwarded-For on
	// requests made on its behalf.
	ClientAddr func(*http.Request) string
	// Direct, when set, takes HTTP/1.1 SSE and NDJSON subscribers off their
	// request goroutines onto its shared writers.
	Direct *direct.Pool

	streamsMu sync.Mutex
	streams   map[string]*direct.Stream // by framing, for Direct
}

// drainBudget is about how much one write batch takes from a subscriber's
// queue: enough to amortize flushes, small enough that a stalled socket
// pins little while its write waits.
const drainBudget = 64 << 10

// setStreamHeaders writes the headers every held response carries.
func setStreamHeaders(w http.ResponseWriter, contentType string) {
	h := w.Header()
	// One array for the three values, each header its own full slice of
	// it: an append to one of them copies instead of overwriting the next.
	values := []string{contentType, "no-cache", "no"}
	h["Content-Type"] = values[0:1:1]
	h["Cache-Control"] = values[1:2:2]
	// nginx and other proxies buffer responses unless told not to.
	h["X-Accel-Buffering"] = values[2:3:3]
}

// closeDelay draws the delay after unload for one connection.
func (o *Options) closeDelay() time.Duration {
	if o.CloseDelay <= 0 {
		return 0
	}
	return o.CloseDelay + rand.N(o.CloseDelay)
}

// reconnectNotice tells a client to reconnect with its cursor, and why.
func reconnectNotice(reason string) *message.Message {
	return message.NewNotice("", message.Reconnect, map[string]any{"reason": reason}, time.Now())
}

// Why a held connection ended, as told to the client in comet.reconnect
// or a close frame: the same words on both delivery paths.
var (
	reasonUnload   = direct.ErrUnload.Error()
	reasonMaxBytes = direct.ErrMaxBytes.Error()
	reasonExpired  = direct.ErrExpired.Error()
)

// ErrGrantExpired is the cause of a request context whose subscribe token or
// authorization ran out: the subscription ends with a comet.reconnect
// notice saying so (WebSocket: close 1008), and the client needs a fresh
// grant to come back.
var ErrGrantExpired = errors.New("subscription authorization expired")

// grantKey holds, in a request's context, when its grant expires.
type grantKey struct{}

// WithGrant bounds a request by the expiry of its subscribe grant: its
// context ends then with ErrGrantExpired as the cause.
func WithGrant(r *http.Request, until time.Time) (*http.Request, context.CancelFunc) {
	ctx, cancel := context.WithDeadlineCause(r.Context(), until, ErrGrantExpired)
	return r.WithContext(context.WithValue(ctx, grantKey{}, until)), cancel
}

// grantUntil is when a request's grant expires, if it does.
func grantUntil(r *http.Request) (time.Time, bool) {
	until, ok := r.Context().Value(grantKey{}).(time.Time)
	return until, ok
}

// releaseKey holds, in a request's context, what to do when the subscriber
// connection it opened ends.
type releaseKey struct{}

type release struct {
	fn    func()
	taken bool
}

// WithRelease arranges for fn to run when the subscriber connection of r
// ends. Call the returned func when the handler returns: it runs fn unless
// the connection was taken over (by the direct path), which then runs fn
// itself when the socket closes.
func WithRelease(r *http.Request, fn func()) (*http.Request, func()) {
	rel := &release{fn: fn}
	return r.WithContext(context.WithValue(r.Context(), releaseKey{}, rel)), func() {
		if !rel.taken {
			fn()
		}
	}
}

// takeRelease hands the release of r's connection to the caller.
func takeRelease(r *http.Request) func() {
	rel, ok := r.Context().Value(releaseKey{}).(*release)
	if !ok {
		return nil
	}
	rel.taken = true
	return rel.fn
}

// grantExpired reports whether a request ended because its grant expired.
func grantExpired(r *http.Request) bool {
	return errors.Is(context.Cause(r.Context()), ErrGrantExpired)
}

// subscribe registers a queue-backed subscription for a request.
func subscribe(r *http.Request, h *hub.Hub, req hub.SubscribeRequest) (*hub.Subscription, *hub.Queue, error) {
	q := h.NewQueue()
	sub, err := h.Subscribe(r.Context(), req, q)
	if err != nil {
		return nil, nil, err
	}
	return sub, q, nil
}
