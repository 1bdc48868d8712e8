package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cometbox/cometbox/caddymodule/auth"
	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/internal/urlquery"
	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/transport"
)

// serveSubscribe answers GET {prefix}/sub/{channels} over the transport the
// request asks for (SPEC §2): `?transport=` first, then `Upgrade: websocket`,
// then `Accept: text/event-stream`, else long-poll.
func (a *API) serveSubscribe(w http.ResponseWriter, r *http.Request, list string) error {
	if r.Method == http.MethodOptions {
		a.CORS.preflight(w, r)
		return nil
	}
	if r.Method != http.MethodGet {
		return allow(w, "GET, OPTIONS")
	}
	a.CORS.apply(w, r)
	channels, err := message.ParseChannelList(list, a.MaxChannels)
	if err != nil {
		return &Error{Status: http.StatusBadRequest, Err: err}
	}
	query := r.URL.RawQuery
	cursor, err := requestCursor(r, query)
	if err != nil {
		return err
	}
	name, err := chooseTransport(r, query)
	if err != nil {
		return err
	}
	until, err := a.Auth.Check(r.Context(), r, channels)
	if err != nil {
		return a.denied(err)
	}
	if !until.IsZero() {
		// The grant ends the subscription when it expires; the transports
		// tell the client why (transport.ErrGrantExpired).
		var cancel context.CancelFunc
		r, cancel = transport.WithGrant(r, until)
		defer transport.AtStreamEnd(r, cancel)()
	}
	ip := a.clientIP(r)
	if a.Connections != nil {
		if !a.Connections.acquire(ip) {
			// Close the connection too: a flood should not keep idle
			// keep-alive sockets around either.
			w.Header().Set("Connection", "close")
			return errorf(http.StatusTooManyRequests, "too many subscriber connections from %s (max_connections_per_ip)", ip)
		}
		if name != transport.LongPoll {
			// These may outlive the handler (the direct path, WebSocket),
			// which then releases the count when the socket closes.
			var done func()
			r, done = transport.WithRelease(r, func() { a.Connections.release(ip) })
			defer transport.AtStreamEnd(r, done)()
		} else {
			defer transport.AtStreamEnd(r, func() { a.Connections.release(ip) })()
		}
	}
	req := hub.SubscribeRequest{Channels: channels, Cursor: cursor, Transport: name}
	switch name {
	case transport.SSE:
		err = transport.ServeSSE(w, r, a.Hub, req, &a.Transport)
	case transport.Stream:
		err = transport.ServeStream(w, r, a.Hub, req, &a.Transport)
	case transport.LongPoll:
		var lp transport.LongPollRequest
		lp.SubscribeRequest = req
		lp.Array = urlquery.Get(query, "format") == "array"
		if lp.Wait, err = a.longPollWait(query); err != nil {
			return err
		}
		err = transport.ServeLongPoll(w, r, a.Hub, lp, &a.Transport)
	case transport.WebSocket:
		if !isUpgrade(r) {
			return errorf(http.StatusBadRequest, "the ws transport needs a WebSocket upgrade request")
		}
		err = transport.ServeWebSocket(w, r, a.Hub, req, &a.Transport)
		if errors.Is(err, transport.ErrOriginRefused) {
			if a.Counters != nil {
				a.Counters.SubscribeDenied.Add(1)
			}
			return &Error{Status: http.StatusForbidden, Err: err}
		}
	}
	if err != nil && !errors.Is(err, transport.ErrWrite) {
		return subscribeError(err)
	}
	return nil
}

// requestCursor reads the cursor from Last-Event-ID or ?last_id=. The header
// wins: EventSource sends it on reconnect with the newest id it saw, while
// the query still holds the id the page started from.
func requestCursor(r *http.Request, query string) (message.Cursor, error) {
	text := headerValue(r.Header, "Last-Event-Id")
	source := "Last-Event-ID header"
	if text == "" {
		text = urlquery.Get(query, "last_id")
		source = "last_id parameter"
	}
	cursor, err := message.ParseCursor(text)
	if err != nil {
		return message.Cursor{}, errorf(http.StatusBadRequest, "%s: %w", source, err)
	}
	return cursor, nil
}

func chooseTransport(r *http.Request, query string) (string, error) {
	if name := urlquery.Get(query, "transport"); name != "" {
		switch name {
		case transport.LongPoll, transport.SSE, transport.Stream, transport.WebSocket:
			return name, nil
		}
		return "", errorf(http.StatusBadRequest, "unknown transport %q; use longpoll, sse, stream or ws", name)
	}
	switch {
	case isUpgrade(r):
		return transport.WebSocket, nil
	case strings.Contains(headerValue(r.Header, "Accept"), "text/event-stream"):
		return transport.SSE, nil
	}
	return transport.LongPoll, nil
}

// isUpgrade reports whether the request asks for a WebSocket (RFC 6455
// §4.2.1); over HTTP/2 (RFC 8441) Go presents the same header.
func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(headerValue(r.Header, "Upgrade"), "websocket")
}

// headerValue is Header.Get for a key already in canonical form (as Go's
// server stores it), without canonicalizing it again on every request.
func headerValue(h http.Header, canonicalKey string) string {
	if v := h[canonicalKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// longPollWait reads ?wait=N (seconds, fractions allowed), capped at the
// configured long-poll timeout.
func (a *API) longPollWait(query string) (time.Duration, error) {
	text := urlquery.Get(query, "wait")
	if text == "" {
		return a.Transport.LongPollTimeout, nil
	}
	seconds, err := strconv.ParseFloat(text, 64)
	if err != nil || !(seconds >= 0) { // also refuses NaN
		return 0, errorf(http.StatusBadRequest, "wait must be a number of seconds, 0 or more")
	}
	// Compared as seconds first: a huge value (or +Inf) would overflow a
	// Duration.
	if seconds >= a.Transport.LongPollTimeout.Seconds() {
		return a.Transport.LongPollTimeout, nil
	}
	return time.Duration(seconds * float64(time.Second)), nil
}

func subscribeError(err error) error {
	var full *hub.LimitError
	switch {
	case errors.As(err, &full):
		return &Error{Status: http.StatusTooManyRequests, Err: err}
	case errors.Is(err, hub.ErrHubClosed):
		return &Error{Status: http.StatusServiceUnavailable, Err: err}
	}
	return storeError(err)
}

// denied turns an authorization refusal into its answer and counts it.
func (a *API) denied(err error) error {
	if a.Counters != nil {
		a.Counters.SubscribeDenied.Add(1)
	}
	var d *auth.Denied
	if errors.As(err, &d) {
		return &Error{Status: d.Status, Err: d}
	}
	return &Error{Status: http.StatusForbidden, Err: err}
}

// AuthorizeRuntime is the WebSocket transport's check for a channel
// subscribed after the upgrade: the same policy as an HTTP subscribe.
func (a *API) AuthorizeRuntime(r *http.Request, channel string) (time.Time, error) {
	until, err := a.Auth.Check(r.Context(), r, []string{channel})
	if err != nil {
		if a.Counters != nil {
			a.Counters.SubscribeDenied.Add(1)
		}
	}
	return until, err
}
