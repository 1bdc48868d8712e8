package naivefanout

import (
	"sync"
	"sync/atomic"
)

// queueSize is how many frames a subscriber may fall behind before a
// publish drops it.
const queueSize = 64

// fanout holds the subscribers of every channel under one mutex and numbers
// the messages published to any of them.
type fanout struct {
	lastID atomic.Uint64

	mu sync.Mutex
	// channels maps a channel name to its subscribers. A name is removed
	// with its last subscriber, so the map holds no more entries than
	// there are subscribers.
	channels map[string]map[*subscriber]struct{}
}

// subscriber is one held subscribe request. Its request goroutine reads
// frames; a publish closes frames when it drops the subscriber.
type subscriber struct {
	frames chan []byte
}

func newFanout() *fanout {
	return &fanout{channels: make(map[string]map[*subscriber]struct{})}
}

// subscribe registers a subscriber to channel.
func (f *fanout) subscribe(channel string) *subscriber {
	s := &subscriber{frames: make(chan []byte, queueSize)}
	f.mu.Lock()
	defer f.mu.Unlock()
	subs := f.channels[channel]
	if subs == nil {
		subs = make(map[*subscriber]struct{})
		f.channels[channel] = subs
	}
	subs[s] = struct{}{}
	return s
}

// unsubscribe removes s from channel, if a publish has not dropped it
// already.
func (f *fanout) unsubscribe(channel string, s *subscriber) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.remove(channel, s)
}

// nextID numbers a message.
func (f *fanout) nextID() uint64 { return f.lastID.Add(1) }

// publish queues frame to every subscriber of channel and returns how many
// took it. A subscriber whose queue is full is dropped, its frames closed,
// so that a slow reader never holds up the publisher or the others.
func (f *fanout) publish(channel string, frame []byte) (delivered int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.channels[channel] {
		select {
		case s.frames <- frame:
			delivered++
		default:
			f.remove(channel, s)
			close(s.frames)
		}
	}
	return delivered
}

// remove deletes s from channel, and channel once it has no subscribers.
// The caller holds f.mu.
func (f *fanout) remove(channel string, s *subscriber) {
	subs := f.channels[channel]
	delete(subs, s)
	if len(subs) == 0 {
		delete(f.channels, channel)
	}
}
