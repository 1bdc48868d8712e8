// Package store defines where history lives. A store gives messages their
// ids, keeps each channel's retained messages, and tells the hub about every
// message appended to it, in id order, so that one hub can fan out messages
// published on any node. The memory store lives in store/memory.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/cometbox/cometbox/caddymodule/message"
)

// ErrUnavailable wraps failures of a store's backing service. Publishes that
// meet it are refused with 503 rather than silently dropped.
var ErrUnavailable = errors.New("store unavailable")

// ErrTooManyChannels is returned by an append that would create a channel
// past the store's limit. Nothing is stored.
var ErrTooManyChannels = errors.New("too many channels with history (max_hub_channels)")

// Retention is how much history one channel keeps: at most Count messages,
// none older than Age.
type Retention struct {
	Count int
	Age   time.Duration
}

// RetentionFunc chooses the retention of a channel by its name.
type RetentionFunc func(channel string) Retention

// Info describes one channel's history.
type Info struct {
	Channel string
	// Messages is how many messages the channel retains now.
	Messages int
	// LastID is the id of the newest message ever published to the channel
	// while the store knew it; zero when none.
	LastID message.Cursor
}

// DeliverFunc receives what was appended to a store, in id order, and the
// notices subscribers must see: comet.deleted for a channel, or a notice
// without a channel (comet.reconnect), which ends every subscription of the
// hub so that clients resume by cursor. A store sends the latter when it
// cannot vouch for what it delivered live, e.g. after missing part of a
// shared fan-out feed or finding its history gone.
type DeliverFunc func(msgs []*message.Message)

// Store keeps history. Implementations are safe for concurrent use.
type Store interface {
	// Listen sets the function every appended message is handed to. The hub
	// calls it once, before any other method.
	Listen(deliver DeliverFunc)

	// Append gives the normalized drafts ids and stores them as one batch:
	// all or none. A key seen before, within the retention window of its
	// first channel, answers the messages of the first append and stores
	// nothing (replayed is true).
	Append(ctx context.Context, drafts []message.Draft, idempotencyKey string) (msgs []*message.Message, replayed bool, err error)

	// Since returns the retained messages of a channel with an id greater
	// than after, oldest first. complete is false when the store cannot
	// prove that these are all the messages published after it: another
	// epoch, or a cursor older than what the channel still retains. Since
	// with Earliest returns everything retained and is always complete.
	Since(ctx context.Context, channel string, after message.Cursor) (msgs []*message.Message, complete bool, err error)

	// Head is the id of the newest message of the whole store, or the
	// epoch with seq 0 when it holds none.
	Head(ctx context.Context) (message.Cursor, error)

	// Info describes a channel; found is false when the store has no
	// history for it.
	Info(ctx context.Context, channel string) (info Info, found bool, err error)

	// Delete drops a channel's history, answers the info it had, and
	// delivers a deleted notice for it so subscribers on every node end.
	Delete(ctx context.Context, channel string) (info Info, found bool, err error)

	// SetRetention applies new retention rules, as after a config reload.
	SetRetention(rules RetentionFunc)

	// Close stops the store's background work.
	Close() error
}

// Presence is implemented by stores shared by several nodes: each node
// reports how many subscribers it holds per channel, so that channel info
// counts every node's.
type Presence interface {
	// ReportSubscribers records a node's subscriber counts; channels in
	// gone no longer have any there. Reports expire after ttl, so a node
	// that dies stops counting.
	ReportSubscribers(ctx context.Context, node string, counts map[string]int, gone []string, ttl time.Duration) error
	// Subscribers sums the counts the other nodes reported for a channel.
	Subscribers(ctx context.Context, channel, exceptNode string) (int, error)
}
