package transport

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/message"
)

// The handler path serves a WebSocket the direct pool cannot take (HTTP/2,
// TLS, no epoll) with coder/websocket and two goroutines of its own: a
// writer that drains the connection's one bounded queue, and a reader.

// serveHandlerWebSocket upgrades the request and returns: the connection
// outlives this request goroutine, whose stack grew through Caddy's
// handler chain.
func serveHandlerWebSocket(w http.ResponseWriter, r *http.Request, h *hub.Hub, req hub.SubscribeRequest, opts *Options) error {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the origin was checked already, against our own list
		// Without context takeover a connection keeps no 32 KiB window
		// between messages; small envelopes stay uncompressed.
		CompressionMode: websocket.CompressionNoContextTakeover,
	})
	if err != nil {
		return nil // Accept has answered the client already
	}
	conn.SetReadLimit(opts.WebSocket.MaxMessageSize)
	link := &queueLink{Queue: h.NewQueue(), expiresChanged: make(chan struct{}, 1)}
	hc := &handlerWSConn{
		wsConn:  newWSConn(r, h, opts, link),
		conn:    conn,
		link:    link,
		release: takeRelease(r),
	}
	hc.writeCtx = context.WithoutCancel(hc.ctx)
	if until, ok := grantUntil(r); ok {
		link.ExpireAt(until)
	}
	go hc.serve(req)
	return nil
}

// queueLink is the handler path's link: the queue its writer drains, and
// when the connection's earliest grant ends.
type queueLink struct {
	*hub.Queue

	mu      sync.Mutex
	expires time.Time
	// expiresChanged wakes the writer to re-arm its timer.
	expiresChanged chan struct{}
}

// ExpireAt lowers the connection's end to a grant's expiry.
func (l *queueLink) ExpireAt(until time.Time) {
	l.mu.Lock()
	if l.expires.IsZero() || until.Before(l.expires) {
		l.expires = until
	}
	l.mu.Unlock()
	select {
	case l.expiresChanged <- struct{}{}:
	default:
	}
}

// arm sets the timer to the connection's end, or far away if none.
func (l *queueLink) arm(t *time.Timer) {
	l.mu.Lock()
	expires := l.expires
	l.mu.Unlock()
	wait := time.Hour
	if !expires.IsZero() {
		wait = time.Until(expires)
	}
	t.Reset(max(wait, 0))
}

func (l *queueLink) expired() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.expires.IsZero() && !time.Now().Before(l.expires)
}

// handlerWSConn is a WebSocket held by its own goroutines.
type handlerWSConn struct {
	*wsConn
	conn *websocket.Conn
	link *queueLink
	// writeCtx carries ctx's values but can never end, so that the library
	// sets up no timeout per frame; writeLoop's stall timer bounds writes.
	writeCtx context.Context
	// release runs once the socket is closed (the per-address count).
	release func()
}

// serve holds the socket until it ends: the writer runs here, the reader
// in a goroutine of its own.
func (c *handlerWSConn) serve(req hub.SubscribeRequest) {
	defer c.close()
	if err := c.start(req); err != nil {
		c.conn.Close(websocket.StatusInternalError, errSubscribeFailed.Error())
		return
	}
	readerDone := make(chan struct{})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(readerDone)
		c.readLoop()
	}()
	c.writeLoop(readerDone)
}

// writeLoop sends queued frames until the connection ends, pinging on
// every heartbeat and closing with 1001 after an unload.
func (c *handlerWSConn) writeLoop(readerDone <-chan struct{}) {
	ping := time.NewTicker(c.opts.Heartbeat)
	defer ping.Stop()
	unload := c.opts.Unload
	var closeTimer <-chan time.Time
	var frames []*message.Message
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	c.link.arm(expiry)
	// One timer bounds every write batch and closes a socket that takes
	// nothing for WriteTimeout. Writes get a context without a deadline:
	// a context.WithTimeout per batch, and the AfterFunc the library
	// registers per frame for a context that can end, cost a sixth of the
	// CPU of a fan-out.
	stall := time.AfterFunc(time.Hour, func() { c.conn.CloseNow() })
	stall.Stop()
	defer stall.Stop()
	for {
		select {
		case <-c.link.expiresChanged:
			c.link.arm(expiry)
		case <-expiry.C:
			if c.link.expired() {
				c.closeSubscriptions()
				c.conn.Close(websocket.StatusPolicyViolation, reasonExpired)
				return
			}
			c.link.arm(expiry)
		case <-c.link.Ready():
			var ended error
			frames, ended = c.link.Drain(frames[:0], drainBudget)
			if err := c.write(frames, stall); err != nil {
				return
			}
			clear(frames)
			if ended != nil {
				// Let go of the hub first, so that once the client reads
				// the close frame it is no longer counted anywhere.
				c.closeSubscriptions()
				code, reason := closeCode(ended)
				c.conn.Close(websocket.StatusCode(code), reason)
				return
			}
		case <-ping.C:
			c.ping()
		case <-unload:
			unload = nil
			closeTimer = time.After(c.opts.closeDelay())
		case <-closeTimer:
			c.conn.Close(websocket.StatusGoingAway, reasonUnload)
			return
		case <-readerDone:
			return
		}
	}
}

// write sends a batch of frames, bounded by the stall timer.
func (c *handlerWSConn) write(frames []*message.Message, stall *time.Timer) error {
	stall.Reset(c.opts.WriteTimeout)
	defer stall.Stop()
	for _, m := range frames {
		if err := c.conn.Write(c.writeCtx, websocket.MessageText, m.Envelope()); err != nil {
			return err
		}
	}
	return nil
}

// ping checks that the peer still answers; one that does not within a
// heartbeat is cut, freeing the socket.
func (c *handlerWSConn) ping() {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.Heartbeat)
		defer cancel()
		if err := c.conn.Ping(ctx); err != nil && c.ctx.Err() == nil {
			c.conn.CloseNow()
		}
	}()
}

// readLoop handles client frames until the socket ends. coder/websocket
// answers pings and enforces the frame size limit (closing with 1009)
// while a Read is pending, so a Read is always pending.
func (c *handlerWSConn) readLoop() {
	for {
		typ, data, err := c.conn.Read(c.ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			c.conn.Close(websocket.StatusUnsupportedData, "binary frames are not accepted; send JSON text frames")
			return
		}
		c.handle(data)
	}
}

// close ends every subscription and waits for the connection's goroutines.
func (c *handlerWSConn) close() {
	c.closeSubscriptions()
	if c.release != nil {
		c.release()
	}
	c.cancel()
	c.conn.CloseNow()
	c.wg.Wait()
}
