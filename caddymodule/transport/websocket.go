package transport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/message"
)

// WebSocketOptions configure the WebSocket transport (SPEC §4).
type WebSocketOptions struct {
	// AllowedOrigins lists the origins, besides the page's own, whose pages
	// may open a WebSocket; "*" allows any.
	AllowedOrigins []string
	// MaxMessageSize bounds one client frame, in bytes.
	MaxMessageSize int64
	// MaxChannels bounds the channels one connection may hold.
	MaxChannels int
	// Authorize, when set, is asked before a channel is subscribed at
	// runtime; a non-nil error refuses it, and a non-zero time is when the
	// permission ends (the connection is closed then).
	Authorize func(r *http.Request, channel string) (time.Time, error)
	// Backend receives client messages; see Forwarder.
	Backend *Forwarder
}

// ErrOriginRefused is returned before the upgrade when the page's origin
// may not open a WebSocket here: cross-site WebSocket hijacking would
// otherwise let any site read a user's channels with the user's cookies.
var ErrOriginRefused = errors.New("websocket origin not allowed (allowed_origins)")

// ServeWebSocket upgrades the request and holds the socket: one text frame
// per envelope out, JSON control frames in (subscribe, unsubscribe, ack,
// message).
func ServeWebSocket(w http.ResponseWriter, r *http.Request, h *hub.Hub, req hub.SubscribeRequest, opts *Options) error {
	if !OriginAllowed(r, opts.WebSocket.AllowedOrigins) {
		return ErrOriginRefused
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the origin was checked above, against our own list
		// Without context takeover a connection keeps no 32 KiB window
		// between messages; small envelopes stay uncompressed.
		CompressionMode: websocket.CompressionNoContextTakeover,
	})
	if err != nil {
		return nil // Accept has answered the client already
	}
	conn.SetReadLimit(opts.WebSocket.MaxMessageSize)

	// The connection outlives this request goroutine, whose stack grew
	// through Caddy's handler chain: it is served by two fresh goroutines
	// of its own, and the handler returns. Its context keeps the request's
	// values (client address, grant) but not its end, which comes when the
	// handler returns.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	c := &wsConn{
		conn:           conn,
		hub:            h,
		opts:           opts,
		req:            r.WithContext(ctx),
		id:             newConnectionID(),
		queue:          h.NewQueue(),
		subs:           make(map[string]*hub.Subscription),
		ctx:            ctx,
		cancel:         cancel,
		writeCtx:       context.WithoutCancel(ctx),
		expiresChanged: make(chan struct{}, 1),
		release:        takeRelease(r),
	}
	if until, ok := grantUntil(r); ok {
		c.expires = until
	}
	go c.serve(req)
	return nil
}

// serve holds the socket until it ends: the writer runs here, the reader
// in a goroutine of its own.
func (c *wsConn) serve(req hub.SubscribeRequest) {
	defer c.close()
	if len(req.Channels) > 0 {
		if err := c.subscribe(req.Channels, req.Cursor, ""); err != nil {
			c.conn.Close(websocket.StatusInternalError, "subscribe failed")
			return
		}
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

// wsConn is one WebSocket subscriber: its socket, the subscriptions it
// holds, and the one bounded queue they all feed.
type wsConn struct {
	conn  *websocket.Conn
	hub   *hub.Hub
	opts  *Options
	req   *http.Request
	id    string
	queue *hub.Queue

	mu       sync.Mutex
	subs     map[string]*hub.Subscription // by channel
	inFlight int                          // backend requests waiting
	// expires is when the earliest grant of the connection's channels
	// ends; expiresChanged wakes the writer to re-arm its timer.
	expires        time.Time
	expiresChanged chan struct{}
	// release runs once the socket is closed (the per-address count).
	release func()

	ctx    context.Context // ends with the connection; cancels backend calls
	cancel context.CancelFunc
	// writeCtx carries ctx's values but can never end, so that the library
	// sets up no timeout per frame; writeLoop's stall timer bounds writes.
	writeCtx context.Context
	wg       sync.WaitGroup // the reader, pings and backend calls
}

// writeLoop sends queued frames until the connection ends, pinging on
// every heartbeat and closing with 1001 after an unload.
func (c *wsConn) writeLoop(readerDone <-chan struct{}) {
	ping := time.NewTicker(c.opts.Heartbeat)
	defer ping.Stop()
	unload := c.opts.Unload
	var closeTimer <-chan time.Time
	var frames []*message.Message
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	c.armExpiry(expiry)
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
		case <-c.expiresChanged:
			c.armExpiry(expiry)
		case <-expiry.C:
			if c.expired() {
				c.closeSubscriptions()
				c.conn.Close(websocket.StatusPolicyViolation, reasonExpired)
				return
			}
			c.armExpiry(expiry)
		case <-c.queue.Ready():
			var ended error
			frames, ended = c.queue.Drain(frames[:0], drainBudget)
			if err := c.write(frames, stall); err != nil {
				return
			}
			clear(frames)
			if ended != nil {
				// Let go of the hub first, so that once the client reads
				// the close frame it is no longer counted anywhere.
				c.closeSubscriptions()
				code, reason := closeCode(ended)
				c.conn.Close(code, reason)
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

// limitLifetime lowers the connection's end to a new grant's expiry.
func (c *wsConn) limitLifetime(until time.Time) {
	if until.IsZero() {
		return
	}
	c.mu.Lock()
	if c.expires.IsZero() || until.Before(c.expires) {
		c.expires = until
	}
	c.mu.Unlock()
	select {
	case c.expiresChanged <- struct{}{}:
	default:
	}
}

// armExpiry sets the timer to the connection's end, or far away if none.
func (c *wsConn) armExpiry(t *time.Timer) {
	c.mu.Lock()
	expires := c.expires
	c.mu.Unlock()
	wait := time.Hour
	if !expires.IsZero() {
		wait = time.Until(expires)
	}
	t.Reset(max(wait, 0))
}

func (c *wsConn) expired() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.expires.IsZero() && !time.Now().Before(c.expires)
}

// statusOf reads the HTTP status an error carries, 403 by default.
func statusOf(err error) int {
	var s interface{ HTTPStatus() int }
	if errors.As(err, &s) {
		return s.HTTPStatus()
	}
	return http.StatusForbidden
}

// write sends a batch of frames, bounded by the stall timer.
func (c *wsConn) write(frames []*message.Message, stall *time.Timer) error {
	stall.Reset(c.opts.WriteTimeout)
	defer stall.Stop()
	for _, m := range frames {
		if err := c.conn.Write(c.writeCtx, websocket.MessageText, m.Envelope()); err != nil {
			return err
		}
	}
	return nil
}

// closeCode maps why the hub ended a subscription to a close frame.
func closeCode(ended error) (websocket.StatusCode, string) {
	switch {
	case errors.Is(ended, hub.ErrSlowConsumer):
		// RFC 6455 §7.4.1: 1008, the endpoint's policy; the client resumes
		// by cursor.
		return websocket.StatusPolicyViolation, "slow consumer: outbound queue full"
	case errors.Is(ended, hub.ErrResync):
		return websocket.StatusServiceRestart, "resume by cursor"
	default:
		return websocket.StatusGoingAway, ended.Error()
	}
}

// ping checks that the peer still answers; one that does not within a
// heartbeat is cut, freeing the socket.
func (c *wsConn) ping() {
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
func (c *wsConn) readLoop() {
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

// clientFrame is what a client may send.
type clientFrame struct {
	Op      string          `json:"op"`
	Channel string          `json:"channel"`
	LastID  string          `json:"last_id"`
	Data    json.RawMessage `json:"data"`
	Ref     string          `json:"ref"`
}

// maxRefLen bounds a client's request reference, which is echoed back.
const maxRefLen = 64

// frameError is a client frame refused with an HTTP-like status.
type frameError struct {
	status int
	reason string
}

// decodeClientFrame reads and checks one client frame: JSON, a known op,
// and for each op the fields it needs, well formed. What it accepts is safe
// to act on; what it refuses gets a comet.error and changes nothing.
func decodeClientFrame(data []byte) (clientFrame, *frameError) {
	var f clientFrame
	if err := json.Unmarshal(data, &f); err != nil {
		return f, &frameError{http.StatusBadRequest, "frame is not a JSON object: " + err.Error()}
	}
	if len(f.Ref) > maxRefLen {
		return f, &frameError{http.StatusBadRequest, fmt.Sprintf("ref is longer than %d bytes", maxRefLen)}
	}
	switch f.Op {
	case "subscribe", "unsubscribe":
		if err := message.ValidateChannel(f.Channel); err != nil {
			return f, &frameError{http.StatusBadRequest, err.Error()}
		}
		if f.Op == "subscribe" {
			if _, err := message.ParseCursor(f.LastID); err != nil {
				return f, &frameError{http.StatusBadRequest, "last_id: " + err.Error()}
			}
		}
	case "ack":
		if cursor, err := message.ParseCursor(f.LastID); err != nil || cursor.IsZero() {
			return f, &frameError{http.StatusBadRequest, "ack: " + message.ErrMalformedCursor.Error()}
		}
	case "message":
		if len(f.Data) == 0 {
			return f, &frameError{http.StatusBadRequest, "message: data is missing"}
		}
	default:
		return f, &frameError{http.StatusBadRequest, fmt.Sprintf("unknown op %q; use subscribe, unsubscribe, ack or message", f.Op)}
	}
	return f, nil
}

func (c *wsConn) handle(data []byte) {
	f, ferr := decodeClientFrame(data)
	if ferr != nil {
		ref := f.Ref
		if len(ref) > maxRefLen {
			ref = ""
		}
		c.fail(ref, "", ferr.status, ferr.reason)
		return
	}
	switch f.Op {
	case "subscribe":
		c.handleSubscribe(f)
	case "unsubscribe":
		c.handleUnsubscribe(f)
	case "ack":
		// Nothing to keep: a client resumes by the cursor it presents when
		// it reconnects. The frame was checked, and it proves the client
		// alive (the JS client sends one every heartbeat).
	case "message":
		if c.opts.WebSocket.Backend == nil {
			c.fail(f.Ref, "", http.StatusNotImplemented, "no backend is configured for client messages")
			return
		}
		c.opts.WebSocket.Backend.forward(c, f.Ref, f.Data)
	}
}

func (c *wsConn) handleSubscribe(f clientFrame) {
	cursor, _ := message.ParseCursor(f.LastID) // checked by decodeClientFrame
	if auth := c.opts.WebSocket.Authorize; auth != nil {
		until, err := auth(c.req, f.Channel)
		if err != nil {
			c.fail(f.Ref, f.Channel, statusOf(err), err.Error())
			return
		}
		c.limitLifetime(until)
	}
	if err := c.subscribe([]string{f.Channel}, cursor, f.Ref); err != nil {
		c.fail(f.Ref, f.Channel, http.StatusServiceUnavailable, err.Error())
	}
}

func (c *wsConn) handleUnsubscribe(f clientFrame) {
	c.mu.Lock()
	sub := c.subs[f.Channel]
	delete(c.subs, f.Channel)
	c.mu.Unlock()
	if sub == nil || !sub.Leave(f.Channel) {
		c.fail(f.Ref, f.Channel, http.StatusNotFound, "not subscribed to this channel")
		return
	}
	c.send(message.NewNotice(f.Channel, message.Unsubscribed, refDetail(f.Ref), time.Now()))
}

// subscribe registers one hub subscription for channels not yet held. The
// comet.subscribed notices go first into the sink, after registration, so a
// client that sees them gets everything published afterwards.
func (c *wsConn) subscribe(channels []string, cursor message.Cursor, ref string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var fresh []string
	for _, ch := range channels {
		if sub := c.subs[ch]; sub != nil && slicesContains(sub.Channels(), ch) {
			continue // already held: subscribing twice is harmless
		}
		fresh = append(fresh, ch)
	}
	if len(c.heldLocked())+len(fresh) > c.opts.WebSocket.MaxChannels {
		return fmt.Errorf("more than %d channels on one connection", c.opts.WebSocket.MaxChannels)
	}
	notices := make([]*message.Message, 0, len(channels))
	for _, ch := range channels {
		notices = append(notices, message.NewNotice(ch, message.Subscribed, refDetail(ref), time.Now()))
	}
	if len(fresh) == 0 {
		c.queue.Start(notices)
		return nil
	}
	sub, err := c.hub.Subscribe(c.ctx, hub.SubscribeRequest{Channels: fresh, Cursor: cursor, Transport: WebSocket},
		&channelSink{queue: c.queue, preface: notices})
	if err != nil {
		return err
	}
	for _, ch := range fresh {
		c.subs[ch] = sub
	}
	return nil
}

func (c *wsConn) heldLocked() []string {
	var held []string
	for ch, sub := range c.subs {
		if slicesContains(sub.Channels(), ch) {
			held = append(held, ch)
		}
	}
	return held
}

// send queues one frame for this client; a client whose queue is full is a
// slow consumer and is cut.
func (c *wsConn) send(m *message.Message) {
	if !c.queue.Send(m) {
		c.queue.Close(hub.ErrSlowConsumer)
	}
}

// fail tells the client a request was refused, with an HTTP-like status;
// the connection and its other subscriptions go on.
func (c *wsConn) fail(ref, channel string, status int, reason string) {
	detail := map[string]any{"status": status, "reason": reason}
	if channel != "" {
		detail["channel"] = channel
	}
	body, _ := json.Marshal(detail)
	c.send(message.NewReply(message.Error, ref, message.Draft{Type: "application/json", Data: body}, time.Now()))
}

func refDetail(ref string) map[string]any {
	if ref == "" {
		return nil
	}
	return map[string]any{"ref": ref}
}

// close ends every subscription and waits for the connection's goroutines.
func (c *wsConn) close() {
	c.closeSubscriptions()
	if c.release != nil {
		c.release()
	}
	c.cancel()
	c.conn.CloseNow()
	c.wg.Wait()
}

func (c *wsConn) closeSubscriptions() {
	c.mu.Lock()
	subs := c.subs
	c.subs = nil
	c.mu.Unlock()
	for _, sub := range subs {
		sub.Close() // several channels may share one; Close is idempotent
	}
}

// channelSink feeds one hub subscription into the connection's queue. It
// differs from the queue itself in one way: a subscription that ends because
// its channels were deleted ends only itself, not the whole connection.
type channelSink struct {
	queue   *hub.Queue
	preface []*message.Message
}

func (s *channelSink) Start(replay []*message.Message) {
	s.queue.Start(append(s.preface, replay...))
}

func (s *channelSink) Send(m *message.Message) bool { return s.queue.Send(m) }

func (s *channelSink) Close(reason error) {
	if errors.Is(reason, hub.ErrChannelsDeleted) {
		return // the comet.deleted notice went out; other channels go on
	}
	s.queue.Close(reason)
}

// OriginAllowed reports whether a request's Origin may use this server: no
// Origin (not a browser), the page's own host, or one of the allowed
// origins ("*" for any).
func OriginAllowed(r *http.Request, allowed []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	listed, _ := OriginListed(origin, allowed)
	return listed
}

// OriginListed reports whether an origin is in an allowed_origins list, and
// whether only by the "*" wildcard (which CORS answers without
// credentials). Entries compare case-insensitively, a trailing slash
// ignored.
func OriginListed(origin string, allowed []string) (listed, wildcard bool) {
	for _, a := range allowed {
		if strings.EqualFold(strings.TrimSuffix(a, "/"), origin) {
			return true, false
		}
	}
	for _, a := range allowed {
		if a == "*" {
			return true, true
		}
	}
	return false, false
}

func newConnectionID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func slicesContains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
