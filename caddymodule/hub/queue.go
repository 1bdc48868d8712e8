package hub

import (
	"sync"

	"github.com/cometbox/cometbox/caddymodule/message"
)

// Queue is the Sink of a subscriber served by its own request goroutine: a
// bounded FIFO of shared frames and a wake-up channel. It starts small and
// grows on demand, so an idle subscriber costs a few words, not a full
// queue.
type Queue struct {
	limit      int
	limitBytes int

	mu     sync.Mutex
	frames []*message.Message // ring buffer
	head   int
	count  int
	bytes  int // what the queued frames hold
	reason error
	closed bool
	ready  chan struct{}
}

// initialQueueCap is the ring size a queue starts with.
const initialQueueCap = 4

// shrinkQueueCap is the ring size above which a drained queue lets go of its
// buffer.
const shrinkQueueCap = 64

// NewQueue makes a queue that holds at most limit live frames and, past
// its first frame, at most limitBytes of them: a subscriber that stalls
// keeps evicted messages alive, so what it may hold is bounded in bytes too.
func NewQueue(limit, limitBytes int) *Queue {
	return &Queue{limit: max(limit, 1), limitBytes: limitBytes, ready: make(chan struct{}, 1)}
}

// Start implements Sink. The replay is kept whole whatever the limit.
func (q *Queue) Start(replay []*message.Message) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range replay {
		q.pushLocked(m)
	}
	if len(replay) > 0 {
		q.signalLocked()
	}
}

// Send implements Sink.
func (q *Queue) Send(m *message.Message) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return true // the subscription is ending anyway
	}
	if q.count >= q.limit || q.count > 0 && q.limitBytes > 0 && q.bytes+m.Size() > q.limitBytes {
		return false
	}
	q.pushLocked(m)
	q.signalLocked()
	return true
}

// Close implements Sink.
func (q *Queue) Close(reason error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.closed, q.reason = true, reason
	q.signalLocked()
}

// Ready is signalled whenever frames arrive or the queue is closed.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

// Drain appends queued frames to dst, oldest first, until about budget
// bytes are taken (at least one frame; 0 takes all). closed is the hub's
// reason for ending the subscription, once every frame before it has been
// drained. A writer drains in slices so that a stalled socket holds one
// slice, not the whole backlog, while its write waits.
func (q *Queue) Drain(dst []*message.Message, budget int) (frames []*message.Message, closed error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	taken := 0
	for q.count > 0 && (budget <= 0 || taken == 0 || taken < budget) {
		m := q.frames[q.head]
		dst = append(dst, m)
		taken += m.Size()
		q.bytes -= m.Size()
		q.frames[q.head] = nil
		q.head = (q.head + 1) % len(q.frames)
		q.count--
	}
	if q.count > 0 {
		q.signalLocked() // more to come: the writer loops back at once
		return dst, nil
	}
	q.head, q.bytes = 0, 0
	if len(q.frames) > shrinkQueueCap {
		q.frames = nil // a burst is over; idle subscribers stay small
	}
	if q.closed {
		return dst, q.reason
	}
	return dst, nil
}

func (q *Queue) pushLocked(m *message.Message) {
	if q.count == len(q.frames) {
		grown := make([]*message.Message, max(initialQueueCap, 2*len(q.frames)))
		for i := 0; i < q.count; i++ {
			grown[i] = q.frames[(q.head+i)%len(q.frames)]
		}
		q.frames, q.head = grown, 0
	}
	q.frames[(q.head+q.count)%len(q.frames)] = m
	q.count++
	q.bytes += m.Size()
}

func (q *Queue) signalLocked() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

var _ Sink = (*Queue)(nil)
