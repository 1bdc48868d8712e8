// Package hub holds channels and their subscribers and fans every message
// out to them. It owns the fan-out loop: each message, encoded once by the
// store, is offered to every subscription of its channel, which hands the
// same *message.Message to its Sink without blocking. History and ids come
// from a store.Store, so the same hub runs on the memory or a shared store.
package hub

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/store"
)

// Hub is a set of channels with their subscribers, over one store.
type Hub struct {
	store store.Store
	now   func() time.Time

	queueLimit atomic.Int64
	queueBytes atomic.Int64
	limits     atomic.Pointer[Limits]
	stats      counters

	mu          sync.RWMutex
	channels    map[string]*subscriberSet
	byTransport map[string]int
	closed      bool

	// presence, when the store is shared, counts other nodes' subscribers.
	presence *presenceReporter
}

// Limits bound what subscribers can make the hub hold; 0 is no limit.
type Limits struct {
	// SubscribersPerChannel bounds one channel's subscriptions.
	SubscribersPerChannel int
	// Channels bounds the channels with subscribers.
	Channels int
}

// LimitError is a subscription refused by a limit.
type LimitError struct{ Reason string }

func (e *LimitError) Error() string { return e.Reason }

// Options configure a hub.
type Options struct {
	// QueueLimit is how many live frames a subscriber may have waiting
	// before it is cut as a slow consumer.
	QueueLimit int
	// QueueBytes bounds what those frames may hold, in bytes.
	QueueBytes int
	Limits     Limits
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// New makes a hub over a store and starts listening to it. The hub owns
// the store from now on and closes it in Close.
func New(st store.Store, opts Options) *Hub {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Hub{
		store:       st,
		now:         opts.Now,
		channels:    make(map[string]*subscriberSet),
		byTransport: make(map[string]int),
	}
	h.SetQueueLimit(opts.QueueLimit, opts.QueueBytes)
	h.SetLimits(opts.Limits)
	st.Listen(h.deliver)
	if p, ok := st.(store.Presence); ok {
		h.presence = startPresence(h, p)
	}
	return h
}

// SetQueueLimit changes the per-subscriber queue limits, as after a reload.
func (h *Hub) SetQueueLimit(frames, bytes int) {
	h.queueLimit.Store(int64(max(frames, 1)))
	h.queueBytes.Store(int64(bytes))
}

// QueueLimits are the per-subscriber queue limits in force: frames, bytes.
func (h *Hub) QueueLimits() (frames, bytes int) {
	return int(h.queueLimit.Load()), int(h.queueBytes.Load())
}

// NewQueue makes a subscriber queue with the limits in force.
func (h *Hub) NewQueue() *Queue {
	return NewQueue(int(h.queueLimit.Load()), int(h.queueBytes.Load()))
}

// SetLimits changes the subscription limits, as after a reload.
func (h *Hub) SetLimits(l Limits) { h.limits.Store(&l) }

// SetRetention applies new retention rules to the store.
func (h *Hub) SetRetention(rules store.RetentionFunc) { h.store.SetRetention(rules) }

// Published is one stored message and how many subscribers held its channel
// when it was published.
type Published struct {
	Message     *message.Message
	Subscribers int
}

// Publish stores a batch of normalized drafts, whole or not at all, and fans
// it out. replayed is true when the idempotency key was seen before: the
// answer is the first publish's and nothing new was stored.
//
// On a shared store, Subscribers also counts what the other nodes last
// reported (every presenceInterval): a subscriber on another node is a
// subscriber too, if one up to a few seconds out of date.
func (h *Hub) Publish(ctx context.Context, drafts []message.Draft, idempotencyKey string) ([]Published, bool, error) {
	var others func() map[string]int
	if h.presence != nil {
		others = h.presence.othersWhile(ctx, channelsOf(drafts))
	}
	msgs, replayed, err := h.store.Append(ctx, drafts, idempotencyKey)
	var remote map[string]int
	if others != nil {
		remote = others() // joined on every path: the goroutine is this call's
	}
	if err != nil {
		h.stats.storeErrors.Add(1)
		return nil, false, fmt.Errorf("publish: %w", err)
	}
	if !replayed {
		h.stats.published.Add(uint64(len(msgs)))
	}
	out := make([]Published, len(msgs))
	h.mu.RLock()
	for i, m := range msgs {
		out[i] = Published{Message: m, Subscribers: h.channels[m.Channel].len() + remote[m.Channel]}
	}
	h.mu.RUnlock()
	return out, replayed, nil
}

// channelsOf lists the channels of drafts, each once.
func channelsOf(drafts []message.Draft) []string {
	var channels []string
	for _, d := range drafts {
		if !slices.Contains(channels, d.Channel) {
			channels = append(channels, d.Channel)
		}
	}
	return channels
}

// fanoutYield is how many subscribers a fan-out offers a message to
// between yields, when the process has one P.
const fanoutYield = 256

// deliver is the store's callback: it offers each message to every
// subscription of its channel, in the order the store gives them.
func (h *Hub) deliver(msgs []*message.Message) {
	var deleted []string
	var ended []*Subscription
	// With one P, the writers that take these frames run only once this
	// loop lets them: yielding every so often starts the first sockets'
	// writes while the rest of a large fan-out is still being queued.
	yield := runtime.GOMAXPROCS(0) == 1
	h.mu.RLock()
	for _, m := range msgs {
		if m.Channel == "" {
			h.endAllLocked(m)
			continue
		}
		set := h.channels[m.Channel]
		if set == nil {
			continue
		}
		for i, sub := range set.list {
			if sub.offer(m) {
				ended = append(ended, sub)
			}
			if yield && i%fanoutYield == fanoutYield-1 {
				runtime.Gosched()
			}
		}
		h.stats.deliveries.Add(uint64(len(set.list)))
		if m.IsNotice() && m.Event == message.Deleted {
			deleted = append(deleted, m.Channel)
		}
	}
	h.mu.RUnlock()
	h.recordLag(msgs)
	// A subscription cut during the fan-out (slow consumer) is no longer
	// listed nor counted, even while its connection's last write waits.
	for _, sub := range ended {
		h.unregister(sub)
	}
	if deleted != nil {
		h.mu.Lock()
		for _, ch := range deleted {
			// The subscriptions already let go of the channel.
			delete(h.channels, ch)
		}
		h.mu.Unlock()
	}
}

// recordLag keeps how long the newest published message of a delivery
// waited: notices are made on the spot and say nothing of the way.
func (h *Hub) recordLag(msgs []*message.Message) {
	for i := len(msgs) - 1; i >= 0; i-- {
		if m := msgs[i]; !m.IsNotice() {
			h.stats.deliveryLag.Store(int64(h.now().Sub(time.UnixMilli(m.Time))))
			return
		}
	}
}

// endAllLocked hands a connection notice to every subscription and ends it:
// the store could not vouch for the live feed, so clients resume by cursor
// from history, which it can. Called with h.mu read-locked.
func (h *Hub) endAllLocked(notice *message.Message) {
	for _, set := range h.channels {
		for _, sub := range set.list {
			sub.endWith(notice)
		}
	}
}

// SubscribeRequest says what a subscriber wants.
type SubscribeRequest struct {
	Channels []string
	// Cursor is the id of the last message the subscriber handled: zero for
	// "from now on", message.Earliest for everything retained.
	Cursor message.Cursor
	// Transport names the transport, for the subscriber counts.
	Transport string
}

// Subscribe registers a subscriber, then hands its sink the history it
// missed (a reset notice first for each channel whose completeness cannot be
// proven) and from then on every new message, in id order, without gaps or
// duplicates. The caller must Close the subscription when its connection
// ends. The subscription is registered before Subscribe returns, so
// anything published after that reaches it.
func (h *Hub) Subscribe(ctx context.Context, req SubscribeRequest, sink Sink) (*Subscription, error) {
	s := &Subscription{
		hub:       h,
		transport: req.Transport,
		channels:  req.Channels,
		replaying: true,
		sink:      sink,
	}
	if err := h.register(s); err != nil {
		return nil, err
	}
	replay, position, err := h.history(ctx, req)
	if err != nil {
		s.Close()
		h.stats.storeErrors.Add(1)
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	s.start(replay, position)
	return s, nil
}

// History reads what a cursor missed without subscribing: notices (reset)
// first, then messages up to the head, in id order, and the head. A
// long-poll whose cursor is behind answers from it alone.
func (h *Hub) History(ctx context.Context, req SubscribeRequest) ([]*message.Message, message.Cursor, error) {
	replay, head, err := h.history(ctx, req)
	if err != nil {
		h.stats.storeErrors.Add(1)
		return nil, message.Cursor{}, fmt.Errorf("history: %w", err)
	}
	return replay, head, nil
}

// history reads what a cursor missed. It runs after registration, so a
// message published meanwhile is in the history, in the subscription's
// pending list, or both; the subscription drops the copy by id.
func (h *Hub) history(ctx context.Context, req SubscribeRequest) ([]*message.Message, message.Cursor, error) {
	head, err := h.store.Head(ctx)
	if err != nil {
		return nil, message.Cursor{}, err
	}
	if req.Cursor.IsZero() {
		return nil, head, nil
	}
	var resets, msgs []*message.Message
	for _, ch := range req.Channels {
		retained, complete, err := h.store.Since(ctx, ch, req.Cursor)
		if err != nil {
			return nil, message.Cursor{}, err
		}
		if !complete {
			resets = append(resets, message.NewNotice(ch, message.Reset, nil, h.now()))
		}
		// Newer than the head read above: it was published after
		// registration, so it comes live, in order with the other
		// channels' messages. Replaying it here could put it ahead of an
		// older message of a channel read earlier. A store's history is in
		// id order, so what is newer is a tail.
		upTo := sort.Search(len(retained), func(i int) bool { return retained[i].ID.Seq > head.Seq })
		if len(req.Channels) == 1 {
			msgs = retained[:upTo] // nothing to merge, nor to sort in place
		} else {
			msgs = append(msgs, retained[:upTo]...)
		}
	}
	if len(req.Channels) > 1 {
		// Each channel's history is in id order; several are merged by
		// id, since one cursor covers them all.
		sort.SliceStable(msgs, func(i, j int) bool { return msgs[i].ID.Seq < msgs[j].ID.Seq })
	}
	if len(resets) == 0 {
		return msgs, head, nil
	}
	return append(resets, msgs...), head, nil
}

func (h *Hub) register(s *Subscription) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrHubClosed
	}
	if err := h.checkLimitsLocked(s.channels); err != nil {
		return err
	}
	for _, ch := range s.channels {
		set := h.channels[ch]
		if set == nil {
			set = newSubscriberSet()
			h.channels[ch] = set
		}
		set.add(s)
	}
	s.listed = true
	h.byTransport[s.transport]++
	return nil
}

// checkLimitsLocked refuses a subscription that would pass a limit, before
// anything is registered.
func (h *Hub) checkLimitsLocked(channels []string) error {
	l := h.limits.Load()
	fresh := 0
	for _, ch := range channels {
		set := h.channels[ch]
		if set == nil {
			fresh++
			continue
		}
		if l.SubscribersPerChannel > 0 && set.len() >= l.SubscribersPerChannel {
			return &LimitError{Reason: fmt.Sprintf("channel %q has %d subscribers, the most allowed (max_subscribers_per_channel)", ch, set.len())}
		}
	}
	if l.Channels > 0 && fresh > 0 && len(h.channels)+fresh > l.Channels {
		return &LimitError{Reason: fmt.Sprintf("the hub holds %d channels with subscribers, the most allowed (max_hub_channels)", len(h.channels))}
	}
	return nil
}

// unregister stops listing a subscription; it is safe to call again.
func (h *Hub) unregister(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !s.listed {
		return
	}
	s.listed = false
	// The channels it let go of are no longer listed: Leave took it out
	// of their sets, and a deleted channel's set is dropped whole.
	s.mu.Lock()
	channels := s.channels
	s.mu.Unlock()
	for _, ch := range channels {
		if set := h.channels[ch]; set != nil && set.remove(s) && set.len() == 0 {
			delete(h.channels, ch)
		}
	}
	if h.byTransport[s.transport]--; h.byTransport[s.transport] <= 0 {
		delete(h.byTransport, s.transport)
	}
}

// leave removes a subscription from one channel's set.
func (h *Hub) leave(s *Subscription, channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if set := h.channels[channel]; set != nil && set.remove(s) && set.len() == 0 {
		delete(h.channels, channel)
	}
}

// ChannelInfo is what GET {prefix}/pub/{channel} answers.
type ChannelInfo struct {
	store.Info
	Subscribers int
}

// Info describes a channel; found is false when it has neither history nor
// subscribers.
func (h *Hub) Info(ctx context.Context, channel string) (ChannelInfo, bool, error) {
	info, found, err := h.store.Info(ctx, channel)
	if err != nil {
		h.stats.storeErrors.Add(1)
		return ChannelInfo{}, false, fmt.Errorf("channel info: %w", err)
	}
	h.mu.RLock()
	subscribers := h.channels[channel].len()
	h.mu.RUnlock()
	if h.presence != nil {
		subscribers += h.presence.others(ctx, channel)
	}
	return ChannelInfo{Info: info, Subscribers: subscribers}, found || subscribers > 0, nil
}

// Delete drops a channel's history and ends its subscriptions with a
// deleted notice. It answers the info the channel had.
func (h *Hub) Delete(ctx context.Context, channel string) (ChannelInfo, bool, error) {
	h.mu.RLock()
	subscribers := h.channels[channel].len()
	h.mu.RUnlock()
	info, found, err := h.store.Delete(ctx, channel)
	if err != nil {
		h.stats.storeErrors.Add(1)
		return ChannelInfo{}, false, fmt.Errorf("delete channel: %w", err)
	}
	return ChannelInfo{Info: info, Subscribers: subscribers}, found || subscribers > 0, nil
}

// Close ends every subscription and closes the store.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	presence := h.presence
	var subs []*Subscription
	for _, set := range h.channels {
		subs = append(subs, set.list...)
	}
	h.mu.Unlock()
	for _, s := range subs {
		s.mu.Lock()
		s.endLocked(ErrHubClosed)
		s.mu.Unlock()
	}
	if presence != nil {
		presence.stop()
	}
	if err := h.store.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}
