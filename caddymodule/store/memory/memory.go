// Package memory is the embedded store: per-channel buffers in the process's
// memory, no dependency. History survives config reloads (the hub that owns
// the store outlives them) but not a restart; a new process starts a new
// epoch, so clients with old cursors are told with a reset notice.
package memory

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/store"
)

// Store is the memory store.
type Store struct {
	now         func() time.Time
	maxChannels int

	mu        sync.Mutex
	epoch     string
	seq       uint64
	retention store.RetentionFunc
	channels  map[string]*channelLog
	// forgotten is the newest seq of any channel whose history was dropped
	// whole (deleted, or collected once empty). A channel the store does not
	// know cannot prove completeness below it.
	forgotten   uint64
	idempotency idempotencyCache
	deliver     store.DeliverFunc

	stop chan struct{}
	done chan struct{}
}

// channelLog is one channel's retained messages, oldest first.
type channelLog struct {
	msgs []*message.Message
	// floor is the seq of the newest message this channel lost: a cursor
	// below it cannot be proven complete.
	floor  uint64
	lastID message.Cursor
}

// sweepInterval is how often expired messages, idle empty channels and old
// idempotency keys are dropped. Reads filter by age themselves, so this
// bounds memory, not correctness.
const sweepInterval = 5 * time.Second

// MaxIdempotencyKeys bounds the idempotency cache; past it the oldest keys
// are forgotten first.
const MaxIdempotencyKeys = 100_000

// Options configure a memory store.
type Options struct {
	Retention store.RetentionFunc
	// Now is the clock; time.Now when nil. Tests inject their own.
	Now func() time.Time
	// NoSweeper starts no background sweeper (tests call Sweep).
	NoSweeper bool
	// MaxChannels bounds the channels with history; 0 is no limit.
	MaxChannels int
}

// New makes an empty store with a fresh epoch.
func New(opts Options) (*Store, error) {
	epoch, err := message.NewEpoch()
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{
		now:         opts.Now,
		maxChannels: opts.MaxChannels,
		epoch:       epoch,
		retention:   opts.Retention,
		channels:    make(map[string]*channelLog),
		idempotency: newIdempotencyCache(MaxIdempotencyKeys),
		deliver:     func([]*message.Message) {},
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	if opts.NoSweeper {
		close(s.done)
	} else {
		go s.sweepLoop()
	}
	return s, nil
}

// Listen implements store.Store.
func (s *Store) Listen(deliver store.DeliverFunc) {
	s.mu.Lock()
	s.deliver = deliver
	s.mu.Unlock()
}

// SetRetention implements store.Store. Buffers shrink to the new rules at
// the next append or sweep.
func (s *Store) SetRetention(rules store.RetentionFunc) {
	s.mu.Lock()
	s.retention = rules
	s.mu.Unlock()
}

// Append implements store.Store. Delivery happens under the store's lock, so
// the hub sees messages in exactly the order of their ids, across channels.
func (s *Store) Append(_ context.Context, drafts []message.Draft, key string) ([]*message.Message, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if key != "" {
		if msgs, ok := s.idempotency.lookup(key, now); ok {
			return msgs, true, nil
		}
	}
	if err := s.checkRoomLocked(drafts); err != nil {
		return nil, false, err
	}
	msgs := make([]*message.Message, len(drafts))
	for i, d := range drafts {
		s.seq++
		msgs[i] = message.New(message.Cursor{Epoch: s.epoch, Seq: s.seq}, d, now)
		s.appendLocked(msgs[i], now)
	}
	if key != "" && len(msgs) > 0 {
		s.idempotency.remember(key, msgs, now.Add(s.retention(msgs[0].Channel).Age))
	}
	s.deliver(msgs)
	return msgs, false, nil
}

// checkRoomLocked refuses a batch that would create channels past the
// limit, before anything of it is stored.
func (s *Store) checkRoomLocked(drafts []message.Draft) error {
	if s.maxChannels <= 0 {
		return nil
	}
	fresh := make(map[string]bool)
	for _, d := range drafts {
		if s.channels[d.Channel] == nil {
			fresh[d.Channel] = true
		}
	}
	if len(s.channels)+len(fresh) > s.maxChannels {
		return store.ErrTooManyChannels
	}
	return nil
}

func (s *Store) appendLocked(m *message.Message, now time.Time) {
	log := s.channels[m.Channel]
	if log == nil {
		log = &channelLog{floor: s.forgotten}
		s.channels[m.Channel] = log
	}
	log.msgs = append(log.msgs, m)
	log.lastID = m.ID
	log.trim(s.retention(m.Channel), now)
}

// trim drops what retention no longer allows, remembering the newest seq
// dropped so that older cursors are answered with a reset.
func (l *channelLog) trim(r store.Retention, now time.Time) {
	cutoff := now.Add(-r.Age).UnixMilli()
	drop := 0
	for drop < len(l.msgs) && (len(l.msgs)-drop > r.Count || l.msgs[drop].Time < cutoff) {
		drop++
	}
	if drop == 0 {
		return
	}
	l.floor = max(l.floor, l.msgs[drop-1].ID.Seq)
	clear(l.msgs[:drop]) // release the messages; the backing array is reused
	l.msgs = l.msgs[drop:]
	if len(l.msgs) == 0 {
		l.msgs = nil
	}
}

// Since implements store.Store.
func (s *Store) Since(_ context.Context, channel string, after message.Cursor) ([]*message.Message, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	log := s.channels[channel]
	var retained []*message.Message
	floor := s.forgotten
	if log != nil {
		log.trim(s.retention(channel), s.now())
		retained, floor = log.msgs, log.floor
	}
	switch {
	case after.IsEarliest():
		return clone(retained), true, nil
	case after.Epoch != s.epoch || after.Seq > s.seq || after.Seq < floor:
		return clone(retained), false, nil
	}
	first := sort.Search(len(retained), func(i int) bool { return retained[i].ID.Seq > after.Seq })
	return clone(retained[first:]), true, nil
}

func clone(msgs []*message.Message) []*message.Message {
	if len(msgs) == 0 {
		return nil
	}
	return append([]*message.Message(nil), msgs...)
}

// Head implements store.Store.
func (s *Store) Head(context.Context) (message.Cursor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return message.Cursor{Epoch: s.epoch, Seq: s.seq}, nil
}

// Info implements store.Store.
func (s *Store) Info(_ context.Context, channel string) (store.Info, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	log := s.channels[channel]
	if log == nil {
		return store.Info{Channel: channel}, false, nil
	}
	log.trim(s.retention(channel), s.now())
	return store.Info{Channel: channel, Messages: len(log.msgs), LastID: log.lastID}, true, nil
}

// Delete implements store.Store.
func (s *Store) Delete(_ context.Context, channel string) (store.Info, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	info := store.Info{Channel: channel}
	log := s.channels[channel]
	if log != nil {
		log.trim(s.retention(channel), now)
		info.Messages, info.LastID = len(log.msgs), log.lastID
		s.forgetLocked(channel, log)
	}
	s.deliver([]*message.Message{message.NewNotice(channel, message.Deleted, nil, now)})
	return info, log != nil, nil
}

func (s *Store) forgetLocked(channel string, log *channelLog) {
	s.forgotten = max(s.forgotten, log.floor, log.lastID.Seq)
	delete(s.channels, channel)
}

// Sweep drops expired messages and idempotency keys, and collects channels
// left with nothing retained.
func (s *Store) Sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for channel, log := range s.channels {
		log.trim(s.retention(channel), now)
		if len(log.msgs) == 0 {
			s.forgetLocked(channel, log)
		}
	}
	s.idempotency.expire(now)
}

func (s *Store) sweepLoop() {
	defer close(s.done)
	ticker := time.NewTicker(sweepInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			s.Sweep()
		case <-s.stop:
			return
		}
	}
}

// Close implements store.Store.
func (s *Store) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	return nil
}

var _ store.Store = (*Store)(nil)
