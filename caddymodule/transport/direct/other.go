//go:build !linux

package direct

import (
	"errors"
	"net/http"

	"github.com/cometbox/cometbox/caddymodule/hub"
)

// Pool is not available off Linux: subscribers stay on the handler path.
type Pool struct{}

// New reports that the direct path needs Linux (epoll).
func New() (*Pool, error) { return nil, errors.New("direct delivery needs Linux") }

// Serve never takes a request here.
func (p *Pool) Serve(http.ResponseWriter, *http.Request, *hub.Hub, hub.SubscribeRequest, Held, *Stream) (bool, error) {
	return false, nil
}

// Upgrade never takes a request here.
func (p *Pool) Upgrade(http.ResponseWriter, *http.Request, *hub.Hub, Held, *Stream, func(Socket) Session) bool {
	return false
}

// Close does nothing.
func (p *Pool) Close() {}
