package direct

import (
	"errors"
	"net/http"
	"time"

	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/message"
)

// Reasons the pool ends a connection, which get a Stream's farewell; their
// texts are what the client is told.
var (
	ErrMaxBytes = errors.New("stream_max_bytes reached")
	ErrUnload   = errors.New("server reloading")
	ErrExpired  = errors.New("authorization expired")
)

// Stream is what one kind of held response (SSE, NDJSON) looks like.
type Stream struct {
	ContentType string
	// Preamble follows the head at once (SSE: retry and a comment).
	Preamble []byte
	// AppendFrame appends the buffers of one message to dst: buffers
	// shared with every other subscriber, written as they are.
	AppendFrame    func(dst [][]byte, m *message.Message) [][]byte
	HeartbeatBytes []byte
	Heartbeat      time.Duration
	// WriteTimeout cuts a socket that has taken nothing of its backlog for
	// this long: a client that stopped reading, or vanished without a FIN,
	// would otherwise hold its descriptor and backlog while its window
	// stays shut. Checked on the heartbeat tick (every second), so the cut
	// comes up to two seconds late; 0 is never.
	WriteTimeout time.Duration
	// MaxBytes ends the stream once this much was written (ErrMaxBytes);
	// 0 is no limit.
	MaxBytes int64
	// Farewell is what is written last when the connection ends for a
	// reason (ErrUnload, ErrExpired, ErrMaxBytes, or the hub's): a
	// comet.reconnect notice, a WebSocket close frame; nil for nothing.
	Farewell func(reason error) []byte
	// MaxMessageSize bounds one message a WebSocket client sends, in bytes.
	MaxMessageSize int
	// ExtraHeaders are set on the response besides the ones in w.Header().
	ExtraHeaders map[string]string
}

// Held is how long one request is held.
type Held struct {
	// Unload is closed when the handler that took the request is
	// unloaded; the connection ends CloseDelay (plus jitter) later.
	Unload     <-chan struct{}
	CloseDelay time.Duration
	// Until is when the subscriber's grant expires; zero is never.
	Until time.Time
	// TakeRelease, once the request is taken over, hands over what must
	// run when the connection ends (the per-address connection count).
	TakeRelease func() func()
}

// Session is the protocol above an upgraded connection: what to do with
// the client's messages. It is made for its Socket before input is read.
type Session interface {
	// Receive handles one text message. It runs on the connection's
	// reader goroutine, one message at a time and in order; while it
	// runs, nothing more is read from this client. data is only valid
	// during the call.
	Receive(data []byte)
	// Closed runs once, when the socket is closed.
	Closed()
}

// Socket is an upgraded connection held by the pool. As a hub.Sink it
// takes the frames of every subscription the Session makes; Close(reason)
// ends the connection with the Stream's farewell for reason (a close
// frame).
type Socket interface {
	hub.Sink
	// ExpireAt ends the connection when a grant expires (ErrExpired).
	ExpireAt(until time.Time)
}

// CanTake reports whether a request came over HTTP/1 on a plain socket,
// which the pool can take over.
func CanTake(r *http.Request) bool { return r.ProtoMajor == 1 && r.TLS == nil }
