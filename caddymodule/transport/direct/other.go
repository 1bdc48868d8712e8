//go:build !linux

package direct

import (
	"errors"
	"net/http"
	"time"

	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/message"
)

// Stream is what one kind of held response looks like (see pool.go).
type Stream struct {
	ContentType    string
	Preamble       []byte
	AppendFrame    func(dst [][]byte, m *message.Message) [][]byte
	HeartbeatBytes []byte
	Heartbeat      time.Duration
	MaxBytes       int64
	Reconnect      func(reason string) *message.Message
	ExtraHeaders   map[string]string
}

// Held is one request to hold.
type Held struct {
	Request     hub.SubscribeRequest
	Unload      <-chan struct{}
	CloseDelay  time.Duration
	Until       time.Time
	TakeRelease func() func()
}

// Pool is not available off Linux: subscribers stay on the handler path.
type Pool struct{}

// New reports that the direct path needs Linux (epoll).
func New() (*Pool, error) { return nil, errors.New("direct delivery needs Linux") }

// Serve never takes a request here.
func (p *Pool) Serve(http.ResponseWriter, *http.Request, *hub.Hub, Held, *Stream) (bool, error) {
	return false, nil
}

// Close does nothing.
func (p *Pool) Close() {}
