package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/cometbox/cometbox/caddymodule/store"
)

// presenceReporter tells a shared store, every presenceInterval, how many
// subscribers this node holds per channel, so that channel info on any
// node counts all of them. Reports expire after presenceTTL: a node that
// dies stops counting by itself.
type presenceReporter struct {
	hub      *Hub
	presence store.Presence
	node     string
	reported map[string]bool // channels the last report named

	mu      sync.Mutex
	counted map[string]countedAt // other nodes' counts read for publishes

	quit chan struct{}
	done chan struct{}
}

const (
	presenceInterval = 5 * time.Second
	presenceTTL      = 3 * presenceInterval
	presenceTimeout  = 2 * time.Second
)

func startPresence(h *Hub, p store.Presence) *presenceReporter {
	var id [8]byte
	rand.Read(id[:])
	r := &presenceReporter{
		hub:      h,
		presence: p,
		node:     hex.EncodeToString(id[:]),
		reported: make(map[string]bool),
		counted:  make(map[string]countedAt),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go r.loop()
	return r
}

func (r *presenceReporter) loop() {
	defer close(r.done)
	ticker := time.NewTicker(presenceInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			r.report(false)
		case <-r.quit:
			r.report(true) // withdraw this node's counts
			return
		}
	}
}

// report sends the counts; a failed report (store down) is simply retried
// at the next tick, and old reports expire meanwhile.
func (r *presenceReporter) report(final bool) {
	counts := make(map[string]int)
	if !final {
		r.hub.mu.RLock()
		for ch, set := range r.hub.channels {
			counts[ch] = set.len()
		}
		r.hub.mu.RUnlock()
	}
	var gone []string
	for ch := range r.reported {
		if _, ok := counts[ch]; !ok {
			gone = append(gone, ch)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), presenceTimeout)
	defer cancel()
	if err := r.presence.ReportSubscribers(ctx, r.node, counts, gone, presenceTTL); err != nil {
		return
	}
	clear(r.reported)
	for ch := range counts {
		r.reported[ch] = true
	}
}

// others is what the other nodes reported for a channel; when the store
// cannot say, only this node's subscribers are counted.
func (r *presenceReporter) others(ctx context.Context, channel string) int {
	n, err := r.presence.Subscribers(ctx, channel, r.node)
	if err != nil {
		return 0
	}
	return n
}

// othersWhile counts what the other nodes reported for channels while the
// caller does something else (a publish appends meanwhile, so the count
// costs it no round trip of its own); wait returns the counts, by channel.
// A count read in the last othersFresh is used again: reports change only
// every presenceInterval, and a busy channel is published to many times a
// second.
func (r *presenceReporter) othersWhile(ctx context.Context, channels []string) (wait func() map[string]int) {
	counts := make(map[string]int, len(channels))
	var stale []string
	now := r.hub.now()
	r.mu.Lock()
	for _, ch := range channels {
		if c, ok := r.counted[ch]; ok && now.Sub(c.at) < othersFresh {
			counts[ch] = c.n
		} else {
			stale = append(stale, ch)
		}
	}
	r.mu.Unlock()
	if len(stale) == 0 {
		return func() map[string]int { return counts }
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		read := make(map[string]int, len(stale))
		for _, ch := range stale {
			read[ch] = r.others(ctx, ch)
		}
		r.mu.Lock()
		if len(r.counted) >= maxCounted {
			clear(r.counted) // a bound, not an eviction policy: they are re-read
		}
		for ch, n := range read {
			r.counted[ch] = countedAt{n: n, at: now}
			counts[ch] = n
		}
		r.mu.Unlock()
	}()
	return func() map[string]int {
		<-done
		return counts
	}
}

// countedAt is another nodes' count of a channel and when it was read.
type countedAt struct {
	n  int
	at time.Time
}

const (
	othersFresh = time.Second
	maxCounted  = 4096
)

func (r *presenceReporter) stop() {
	close(r.quit)
	<-r.done
}
