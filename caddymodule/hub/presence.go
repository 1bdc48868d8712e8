package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
func (r *presenceReporter) othersWhile(ctx context.Context, channels []string) (wait func() map[string]int) {
	counts := make(map[string]int, len(channels))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, ch := range channels {
			counts[ch] = r.others(ctx, ch)
		}
	}()
	return func() map[string]int {
		<-done
		return counts
	}
}

func (r *presenceReporter) stop() {
	close(r.quit)
	<-r.done
}
