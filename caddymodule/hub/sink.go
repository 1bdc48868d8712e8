package hub

import (
	"errors"

	"github.com/cometbox/cometbox/caddymodule/message"
)

// Sink is where the hub hands the frames of one subscriber. The hub owns the
// fan-out loop; a sink only has to accept a frame without blocking. The
// handler transports drain a Queue; a writer that sends the same encoded
// bytes straight to many sockets can implement Sink too.
type Sink interface {
	// Start hands over the history a subscription begins with: notices
	// (reset) first, then messages in id order. It is bounded by retention,
	// not by the live queue limit, and comes before any Send.
	Start(replay []*message.Message)
	// Send hands over one live frame. It must not block; it answers false
	// when the subscriber's bounded queue is full, and the hub then ends the
	// subscription as a slow consumer.
	Send(m *message.Message) bool
	// Close tells the sink that the hub ended the subscription and why. The
	// sink may still write what it holds (a deleted notice, for one).
	Close(reason error)
}

// Reasons a hub ends a subscription.
var (
	// ErrSlowConsumer: the subscriber's queue was full. It resumes by cursor.
	ErrSlowConsumer = errors.New("slow consumer: outbound queue full")
	// ErrChannelsDeleted: every channel of the subscription was deleted.
	ErrChannelsDeleted = errors.New("channels deleted")
	// ErrResync: the store asked every subscriber to resume by cursor.
	ErrResync = errors.New("store asked subscribers to resume by cursor")
	// ErrHubClosed: the hub is shutting down.
	ErrHubClosed = errors.New("hub closed")
)
