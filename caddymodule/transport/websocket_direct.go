package transport

import (
	"net/http"

	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/internal/wsframe"
	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/transport/direct"
)

// serveDirectWebSocket hands an HTTP/1.1 WebSocket to the direct pool,
// which holds it without a goroutine: the pool's writers send each
// message's shared frame, and a reader goroutine lives only while the
// client's frames are read. It reports false when the pool does not take
// the request.
func serveDirectWebSocket(w http.ResponseWriter, r *http.Request, h *hub.Hub, req hub.SubscribeRequest, opts *Options) bool {
	var c *directWSConn
	taken := opts.Direct.Upgrade(w, r, h, held(r, opts), opts.webSocketStream(), func(s direct.Socket) direct.Session {
		c = &directWSConn{newWSConn(r, h, opts, s)}
		return c
	})
	if c != nil {
		_ = c.start(req) // a failure closes the socket with 1011
	}
	return taken
}

// directWSConn is the session of a WebSocket the pool holds.
type directWSConn struct{ *wsConn }

// Receive implements direct.Session.
func (c *directWSConn) Receive(data []byte) { c.handle(data) }

// Closed implements direct.Session: the subscriptions end, and backend
// calls still waiting are cancelled; they end on their own, and what they
// send then goes nowhere.
func (c *directWSConn) Closed() {
	c.closeSubscriptions()
	c.cancel()
}

// webSocketStream describes WebSocket frames for the direct path, shared
// by every connection of a handler. No compression is agreed, so a
// message's frame is its header and envelope, the same bytes for all.
func (o *Options) webSocketStream() *direct.Stream {
	o.streamsMu.Lock()
	defer o.streamsMu.Unlock()
	const key = "\x00websocket"
	if s, ok := o.streams[key]; ok {
		return s
	}
	if o.streams == nil {
		o.streams = make(map[string]*direct.Stream)
	}
	s := &direct.Stream{
		AppendFrame: func(dst [][]byte, m *message.Message) [][]byte {
			return append(dst, m.WebSocketHeader(), m.Envelope())
		},
		HeartbeatBytes: wsframe.Frame(wsframe.OpPing, nil),
		Heartbeat:      o.Heartbeat,
		WriteTimeout:   o.WriteTimeout,
		Farewell: func(reason error) []byte {
			return wsframe.CloseFrame(closeCode(reason))
		},
		MaxMessageSize: int(o.WebSocket.MaxMessageSize),
	}
	o.streams[key] = s
	return s
}

var _ direct.Session = (*directWSConn)(nil)
