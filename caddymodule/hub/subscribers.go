package hub

import (
	"sync/atomic"
	"time"
)

// subscriberSet is one channel's subscriptions. A slice is what the fan-out
// walks (fast and allocation-free); the index makes removal O(1).
type subscriberSet struct {
	list  []*Subscription
	index map[*Subscription]int
}

func newSubscriberSet() *subscriberSet {
	return &subscriberSet{index: make(map[*Subscription]int)}
}

func (s *subscriberSet) len() int {
	if s == nil {
		return 0
	}
	return len(s.list)
}

func (s *subscriberSet) add(sub *Subscription) {
	if _, ok := s.index[sub]; ok {
		return
	}
	s.index[sub] = len(s.list)
	s.list = append(s.list, sub)
}

func (s *subscriberSet) remove(sub *Subscription) bool {
	i, ok := s.index[sub]
	if !ok {
		return false
	}
	last := len(s.list) - 1
	s.list[i] = s.list[last]
	s.index[s.list[i]] = i
	s.list[last] = nil
	s.list = s.list[:last]
	delete(s.index, sub)
	return true
}

// counters are the hub's running totals, read by the metrics.
type counters struct {
	published     atomic.Uint64
	deliveries    atomic.Uint64
	slowConsumers atomic.Uint64
	storeErrors   atomic.Uint64
	// deliveryLag is how long, in nanoseconds, the newest message handed
	// to subscribers had waited since it was published.
	deliveryLag atomic.Int64
}

// Stats is a snapshot of the hub's totals.
type Stats struct {
	Published     uint64
	Deliveries    uint64
	SlowConsumers uint64
	StoreErrors   uint64
	// DeliveryLag is how long the newest message the store delivered had
	// waited since it was published: on a shared store, the delay of the
	// feed between nodes and of this node's backlog; near 0 in memory.
	DeliveryLag time.Duration
	// Subscribers counts held subscriptions by transport name.
	Subscribers map[string]int
	Channels    int
}

// Stats takes a snapshot of the hub's totals.
func (h *Hub) Stats() Stats {
	h.mu.RLock()
	defer h.mu.RUnlock()
	st := Stats{
		Published:     h.stats.published.Load(),
		Deliveries:    h.stats.deliveries.Load(),
		SlowConsumers: h.stats.slowConsumers.Load(),
		StoreErrors:   h.stats.storeErrors.Load(),
		DeliveryLag:   time.Duration(h.stats.deliveryLag.Load()),
		Subscribers:   make(map[string]int, len(h.byTransport)),
		Channels:      len(h.channels),
	}
	for t, n := range h.byTransport {
		st.Subscribers[t] = n
	}
	return st
}
