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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cometbox/cometbox/caddymodule/auth"
	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/internal/wsframe"
	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/transport/direct"
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
// message). An HTTP/1.1 socket goes to the direct pool when there is one;
// others are served by a writer and a reader goroutine of their own.
func ServeWebSocket(w http.ResponseWriter, r *http.Request, h *hub.Hub, req hub.SubscribeRequest, opts *Options) error {
	if !OriginAllowed(r, opts.WebSocket.AllowedOrigins) {
		return ErrOriginRefused
	}
	if opts.Direct != nil && serveDirectWebSocket(w, r, h, req, opts) {
		return nil
	}
	return serveHandlerWebSocket(w, r, h, req, opts)
}

// wsLink is how frames reach a WebSocket client: as a hub.Sink it takes
// every subscription's frames and the connection's own notices, and
// Close(reason) ends the connection with the close code for reason.
type wsLink interface {
	hub.Sink
	// ExpireAt ends the connection with 1008 when a grant expires.
	ExpireAt(until time.Time)
}

// wsConn is the protocol of one WebSocket subscriber: the requests it
// sends, and the subscriptions they make, whichever path holds its socket.
type wsConn struct {
	link wsLink
	hub  *hub.Hub
	opts *Options
	// upgrade is what later requests are judged and forwarded by.
	upgrade upgradeRequest
	// clientAddr is the client's address as Caddy determined it, for
	// X-Forwarded-For on backend calls; empty without ClientAddr.
	clientAddr string

	mu       sync.Mutex
	id       string       // made when a backend call first needs it
	subs     []channelSub // a handful: a list costs less than a map
	closed   bool         // no more subscriptions
	inFlight int          // backend requests waiting

	ctx    context.Context // ends with the connection; cancels backend calls
	cancel context.CancelFunc
	wg     sync.WaitGroup // backend calls; on the handler path also its reader and pings
}

// newWSConn makes the protocol side of a connection, which outlives the
// request. It keeps none of the request's context: Caddy's holds the
// response writer, and through it the hijacked connection's buffers,
// 8 KiB a socket.
func newWSConn(r *http.Request, h *hub.Hub, opts *Options, link wsLink) *wsConn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &wsConn{
		link:    link,
		hub:     h,
		opts:    opts,
		upgrade: keepUpgrade(r),
		ctx:     ctx,
		cancel:  cancel,
	}
	if opts.ClientAddr != nil {
		c.clientAddr = opts.ClientAddr(r)
	}
	return c
}

// keptHeaders are the upgrade request's headers a connection keeps: what
// authorization needs, and what backend calls forward.
var keptHeaders = func() []string {
	kept := slices.Clone(auth.RequestHeaders)
	for _, name := range forwardedHeaders {
		if !slices.Contains(kept, name) {
			kept = append(kept, name)
		}
	}
	return kept
}()

// upgradeRequest is what a connection keeps of its upgrade request: the
// URL, addresses and kept headers that authorization reads (cookies,
// token) and backend calls forward. Not the request itself: what the
// handler chain hung on its context holds the hijacked connection's
// buffers.
type upgradeRequest struct {
	uri        string // path and query: a parsed URL costs ten times more
	host       string
	remoteAddr string
	header     http.Header
}

func keepUpgrade(r *http.Request) upgradeRequest {
	header := make(http.Header, len(keptHeaders))
	for _, name := range keptHeaders {
		if v := r.Header[name]; len(v) > 0 {
			header[name] = v
		}
	}
	// A copy: a URI without a query is a piece of the request line.
	uri := strings.Clone(r.URL.RequestURI())
	return upgradeRequest{uri: uri, host: r.Host, remoteAddr: r.RemoteAddr, header: header}
}

// request rebuilds the upgrade request in ctx, for authorization.
func (u upgradeRequest) request(ctx context.Context) *http.Request {
	parsed, err := url.ParseRequestURI(u.uri)
	if err != nil {
		parsed = &url.URL{Path: "/"} // it was a request's URL: not reached
	}
	r := &http.Request{
		Method:     http.MethodGet,
		URL:        parsed,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     u.header,
		Host:       u.host,
		RemoteAddr: u.remoteAddr,
		RequestURI: u.uri,
	}
	return r.WithContext(ctx)
}

// channelSub is a channel a connection subscribed, and the subscription
// that holds it (one may hold several).
type channelSub struct {
	channel string
	sub     *hub.Subscription
}

// start subscribes the channels of the upgrade request, and starts the
// link either way: what it queued goes out after the handshake answer.
func (c *wsConn) start(req hub.SubscribeRequest) error {
	if len(req.Channels) == 0 {
		c.link.Start(nil)
		return nil
	}
	if err := c.subscribe(req.Channels, req.Cursor, ""); err != nil {
		c.link.Start(nil)
		c.link.Close(errSubscribeFailed)
		return err
	}
	return nil
}

// errSubscribeFailed ends a connection whose first channels could not be
// subscribed (close 1011).
var errSubscribeFailed = errors.New("subscribe failed")

// statusOf reads the HTTP status an error carries, 403 by default.
func statusOf(err error) int {
	var s interface{ HTTPStatus() int }
	if errors.As(err, &s) {
		return s.HTTPStatus()
	}
	return http.StatusForbidden
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
		until, err := auth(c.upgrade.request(c.ctx), f.Channel)
		if err != nil {
			c.fail(f.Ref, f.Channel, statusOf(err), err.Error())
			return
		}
		if !until.IsZero() {
			c.link.ExpireAt(until)
		}
	}
	if err := c.subscribe([]string{f.Channel}, cursor, f.Ref); err != nil {
		c.fail(f.Ref, f.Channel, http.StatusServiceUnavailable, err.Error())
	}
}

func (c *wsConn) handleUnsubscribe(f clientFrame) {
	c.mu.Lock()
	var sub *hub.Subscription
	c.subs = slices.DeleteFunc(c.subs, func(cs channelSub) bool {
		if cs.channel == f.Channel {
			sub = cs.sub
			return true
		}
		return false
	})
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
	if c.closed {
		return errConnectionClosed
	}
	held := c.heldLocked()
	var fresh []string
	for _, ch := range channels {
		if slices.Contains(held, ch) {
			continue // already held: subscribing twice is harmless
		}
		fresh = append(fresh, ch)
	}
	if len(held)+len(fresh) > c.opts.WebSocket.MaxChannels {
		return fmt.Errorf("more than %d channels on one connection", c.opts.WebSocket.MaxChannels)
	}
	notices := make([]*message.Message, 0, len(channels))
	for _, ch := range channels {
		notices = append(notices, message.NewNotice(ch, message.Subscribed, refDetail(ref), time.Now()))
	}
	if len(fresh) == 0 {
		c.link.Start(notices)
		return nil
	}
	sub, err := c.hub.Subscribe(c.ctx, hub.SubscribeRequest{Channels: fresh, Cursor: cursor, Transport: WebSocket},
		&channelSink{out: c.link, preface: notices})
	if err != nil {
		return err
	}
	// A channel held before and let go since (deleted) is listed anew.
	c.subs = slices.DeleteFunc(c.subs, func(cs channelSub) bool { return slices.Contains(fresh, cs.channel) })
	for _, ch := range fresh {
		c.subs = append(c.subs, channelSub{ch, sub})
	}
	return nil
}

// heldLocked lists the channels still held: a subscription lets go of a
// deleted channel on its own.
func (c *wsConn) heldLocked() []string {
	var held []string
	for _, cs := range c.subs {
		if slices.Contains(cs.sub.Channels(), cs.channel) {
			held = append(held, cs.channel)
		}
	}
	return held
}

// errConnectionClosed refuses a subscription that comes as the connection
// ends.
var errConnectionClosed = errors.New("connection closed")

// send queues one frame for this client; a client whose queue is full is a
// slow consumer and is cut.
func (c *wsConn) send(m *message.Message) {
	if !c.link.Send(m) {
		c.link.Close(hub.ErrSlowConsumer)
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

func (c *wsConn) closeSubscriptions() {
	c.mu.Lock()
	subs := c.subs
	c.subs, c.closed = nil, true
	c.mu.Unlock()
	for _, cs := range subs {
		cs.sub.Close() // several channels may share one; Close is idempotent
	}
}

// channelSink feeds one hub subscription into the connection's link. It
// differs from the link itself in one way: a subscription that ends because
// its channels were deleted ends only itself, not the whole connection.
type channelSink struct {
	out     hub.Sink
	preface []*message.Message
}

func (s *channelSink) Start(replay []*message.Message) {
	preface := s.preface
	s.preface = nil // sent once; an idle connection need not keep it
	s.out.Start(append(preface, replay...))
}

func (s *channelSink) Send(m *message.Message) bool { return s.out.Send(m) }

func (s *channelSink) Close(reason error) {
	if errors.Is(reason, hub.ErrChannelsDeleted) {
		return // the comet.deleted notice went out; other channels go on
	}
	s.out.Close(reason)
}

// closeCode maps why a connection ends to its close frame (RFC 6455
// §7.4.1); the client resumes by cursor after any of them.
func closeCode(ended error) (uint16, string) {
	switch {
	case errors.Is(ended, hub.ErrSlowConsumer):
		// 1008, the endpoint's policy.
		return wsframe.ClosePolicyViolation, "slow consumer: outbound queue full"
	case errors.Is(ended, direct.ErrExpired):
		return wsframe.ClosePolicyViolation, reasonExpired
	case errors.Is(ended, hub.ErrResync):
		return wsframe.CloseServiceRestart, "resume by cursor"
	case errors.Is(ended, errSubscribeFailed):
		return wsframe.CloseInternalError, ended.Error()
	default:
		return wsframe.CloseGoingAway, ended.Error()
	}
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

// connectionID names the connection to the backend, the same on every
// call.
func (c *wsConn) connectionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id == "" {
		c.id = newConnectionID()
	}
	return c.id
}

func newConnectionID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
