package direct

import (
	"time"

	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/message"
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
	// MaxBytes ends the stream with a reconnect notice once this much was
	// written; 0 is no limit.
	MaxBytes int64
	// Reconnect makes the comet.reconnect notice for a reason.
	Reconnect func(reason string) *message.Message
	// ExtraHeaders are set on the response besides the ones in w.Header().
	ExtraHeaders map[string]string
}

// Held is one request to hold.
type Held struct {
	Request hub.SubscribeRequest
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
