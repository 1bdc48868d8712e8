package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cometbox/cometbox/caddymodule/message"
)

// Forwarder turns what a WebSocket client sends (`op: message`) into an
// ordinary HTTP POST to the legacy app, which cannot hold the socket itself,
// and sends the app's answer back to that client (SPEC §4).
type Forwarder struct {
	// URL is where client messages are POSTed.
	URL string
	// Timeout bounds one request to the backend.
	Timeout time.Duration
	// MaxInFlight bounds the requests one connection may have waiting for
	// the backend; more are refused with a 429 comet.error at once.
	MaxInFlight int
	// MaxReplySize bounds a reply body, in bytes.
	MaxReplySize int64
	// Client sends the requests.
	Client *http.Client
}

// forwardedHeaders are copied from the WebSocket upgrade request, so the
// legacy app authenticates the message like any request from that browser.
var forwardedHeaders = []string{"Cookie", "Authorization", "Origin", "User-Agent", "Accept-Language"}

// forward posts one client message in its own goroutine, owned by the
// connection (waited for when it ends, cancelled with it), so that a slow
// backend never holds up delivery to the socket.
func (f *Forwarder) forward(c *wsConn, ref string, data json.RawMessage) {
	if !c.acquireBackendSlot(f.MaxInFlight) {
		c.fail(ref, "", http.StatusTooManyRequests, fmt.Sprintf("more than %d messages waiting for the backend", f.MaxInFlight))
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.releaseBackendSlot()
		reply, err := f.post(c, data)
		if err != nil {
			c.fail(ref, "", err.status, err.reason)
			return
		}
		c.send(message.NewReply(message.Reply, ref, reply, time.Now()))
	}()
}

type backendError struct {
	status int
	reason string
}

func (f *Forwarder) post(c *wsConn, data json.RawMessage) (message.Draft, *backendError) {
	ctx, cancel := context.WithTimeout(c.ctx, f.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL, bytes.NewReader(data))
	if err != nil {
		return message.Draft{}, &backendError{http.StatusInternalServerError, "backend request: " + err.Error()}
	}
	for _, name := range forwardedHeaders {
		if v := c.upgrade.header.Values(name); len(v) > 0 {
			req.Header[name] = v
		}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Comet-Connection-Id", c.connectionID())
	req.Header.Set("Comet-Channels", strings.Join(c.channels(), ","))
	if c.clientAddr != "" {
		req.Header.Set("X-Forwarded-For", c.clientAddr)
	}
	resp, err := f.Client.Do(req)
	if err != nil {
		return message.Draft{}, &backendError{http.StatusBadGateway, "backend unreachable"}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.MaxReplySize+1))
	if err != nil {
		return message.Draft{}, &backendError{http.StatusBadGateway, "backend reply cut short"}
	}
	if resp.StatusCode != http.StatusOK {
		return message.Draft{}, &backendError{resp.StatusCode, fmt.Sprintf("backend answered %d", resp.StatusCode)}
	}
	if int64(len(body)) > f.MaxReplySize {
		return message.Draft{}, &backendError{http.StatusBadGateway, "backend reply is larger than max_body_size"}
	}
	reply := message.Draft{Type: resp.Header.Get("Content-Type"), Data: body}
	if len(body) == 0 {
		return message.Draft{}, nil // a reply with no payload still answers the request
	}
	if err := reply.NormalizePayload(); err != nil {
		return message.Draft{}, &backendError{http.StatusBadGateway, "backend reply: " + err.Error()}
	}
	return reply, nil
}

// acquireBackendSlot reserves one of the connection's backend requests.
func (c *wsConn) acquireBackendSlot(limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inFlight >= limit {
		return false
	}
	c.inFlight++
	return true
}

func (c *wsConn) releaseBackendSlot() {
	c.mu.Lock()
	c.inFlight--
	c.mu.Unlock()
}

// channels lists what the connection holds, for the backend.
func (c *wsConn) channels() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.heldLocked()
}
