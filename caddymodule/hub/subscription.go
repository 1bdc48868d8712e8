package hub

import (
	"slices"
	"sync"

	"github.com/cometbox/cometbox/caddymodule/message"
)

// Subscription is one subscriber's hold on one or more channels. The hub
// offers it every message of those channels; it filters what the subscriber
// has already seen and passes the rest to its sink, in id order.
type Subscription struct {
	hub       *Hub
	transport string

	mu sync.Mutex
	// channels are those the subscription still holds: a deleted or left
	// channel is let go. The slice starts as the caller's and is never
	// changed in place, only replaced.
	channels []string
	// replaying is true while the history is being read: live messages wait
	// in pending so that they cannot overtake the history before them.
	replaying bool
	pending   []*message.Message
	// position is the cursor the subscriber would present next if it
	// handled everything handed to its sink: used to drop duplicates
	// (seq at or below it) and as a long-poll's last_id.
	position message.Cursor
	// startedAt is the position after the replay: the hub's head or the
	// newest replayed message.
	startedAt message.Cursor
	sink      Sink
	ended     bool // the sink was closed or the subscriber left

	listed bool // the hub's sets hold it; guarded by hub.mu
}

// Channels returns the channels the subscription still holds.
func (s *Subscription) Channels() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.channels...)
}

// Position is the id of the newest message handed to the sink, or the hub's
// head when the subscription started when nothing newer came.
func (s *Subscription) Position() message.Cursor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.position
}

// Start is the position the subscription started from, once its history
// was handed over: everything up to it on its channels was replayed.
func (s *Subscription) Start() message.Cursor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startedAt
}

// offer is called by the hub's fan-out for each message of a held channel.
// It reports whether the subscription ended on it, so that the hub stops
// listing it at once rather than when its connection finally closes.
func (s *Subscription) offer(m *message.Message) (endedNow bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	if !m.IsNotice() && m.ID.Seq <= s.position.Seq && m.ID.Epoch == s.position.Epoch {
		return false // already replayed from history
	}
	if s.replaying {
		if len(s.pending) >= int(s.hub.queueLimit.Load()) {
			s.endLocked(ErrSlowConsumer)
			return true
		}
		s.pending = append(s.pending, m)
		return false
	}
	s.deliverLocked(m)
	return s.ended
}

func (s *Subscription) deliverLocked(m *message.Message) {
	if m.IsNotice() && m.Event == message.Deleted {
		s.dropChannelLocked(m)
		return
	}
	if !s.sink.Send(m) {
		s.endLocked(ErrSlowConsumer)
		return
	}
	if !m.IsNotice() {
		s.position = m.ID
	}
}

// dropChannelLocked passes a deleted notice on and lets go of its channel;
// the subscription ends when it has no channel left.
func (s *Subscription) dropChannelLocked(notice *message.Message) {
	s.channels, _ = without(s.channels, notice.Channel)
	if !s.sink.Send(notice) {
		s.endLocked(ErrSlowConsumer)
		return
	}
	if len(s.channels) == 0 {
		s.endLocked(ErrChannelsDeleted)
	}
}

// start hands the replay to the sink, then whatever arrived meanwhile.
func (s *Subscription) start(replay []*message.Message, position message.Cursor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.position, s.startedAt = position, position
	s.sink.Start(replay)
	s.replaying = false
	pending := s.pending
	s.pending = nil
	for _, m := range pending {
		if s.ended {
			return
		}
		switch {
		case m.IsNotice() && m.Channel == "":
			s.sink.Send(m)
			s.endLocked(ErrResync)
		case m.IsNotice() || m.ID.Seq > s.position.Seq || m.ID.Epoch != s.position.Epoch:
			s.deliverLocked(m)
		}
	}
}

// endWith hands a last notice to the sink and ends the subscription. A
// subscription held under several channels is ended once.
func (s *Subscription) endWith(notice *message.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	if s.replaying {
		s.pending = append(s.pending, notice)
		return
	}
	s.sink.Send(notice) // best effort: a full queue ends it all the same
	s.endLocked(ErrResync)
}

// endLocked ends the subscription from the hub's side: the sink is told why.
// The hub's registry still lists the subscription (offers to it are no-ops)
// until the sink's owner calls Close, which it does when its connection ends.
func (s *Subscription) endLocked(reason error) {
	if s.ended {
		return
	}
	s.ended = true
	s.pending = nil
	s.sink.Close(reason)
	if reason == ErrSlowConsumer {
		s.hub.stats.slowConsumers.Add(1)
	}
}

// Leave lets go of one channel and keeps the others; a subscription left
// with no channel is closed. It reports whether the channel was held.
func (s *Subscription) Leave(channel string) bool {
	s.mu.Lock()
	var held bool
	s.channels, held = without(s.channels, channel)
	empty := len(s.channels) == 0
	s.mu.Unlock()
	if !held {
		return false
	}
	if empty {
		s.Close()
		return true
	}
	s.hub.leave(s, channel)
	return true
}

// Close ends the subscription from the subscriber's side, when its
// connection is over. It is safe to call more than once.
func (s *Subscription) Close() {
	s.mu.Lock()
	s.ended = true
	s.pending = nil
	s.mu.Unlock()
	s.hub.unregister(s)
}

// without returns channels less channel, in a new slice if it was there:
// the one it was given may be the subscriber's request, still read by its
// caller.
func without(channels []string, channel string) (rest []string, found bool) {
	if !slices.Contains(channels, channel) {
		return channels, false
	}
	rest = make([]string, 0, len(channels)-1)
	for _, ch := range channels {
		if ch != channel {
			rest = append(rest, ch)
		}
	}
	return rest, true
}
