package memory

import (
	"time"

	"github.com/cometbox/cometbox/caddymodule/message"
)

// idempotencyCache remembers which messages an Idempotency-Key produced, so
// that a publisher retrying after a timeout gets the same ids back and
// subscribers never see the message twice. Keys are kept in arrival order;
// the oldest go first when the cache is full or their window has passed.
type idempotencyCache struct {
	limit   int
	entries map[string]idempotencyEntry
	order   []string
}

type idempotencyEntry struct {
	msgs    []*message.Message
	expires time.Time
}

func newIdempotencyCache(limit int) idempotencyCache {
	return idempotencyCache{limit: limit, entries: make(map[string]idempotencyEntry)}
}

func (c *idempotencyCache) lookup(key string, now time.Time) ([]*message.Message, bool) {
	e, ok := c.entries[key]
	if !ok || !now.Before(e.expires) {
		return nil, false
	}
	return e.msgs, true
}

func (c *idempotencyCache) remember(key string, msgs []*message.Message, expires time.Time) {
	if _, ok := c.entries[key]; !ok {
		c.order = append(c.order, key)
	}
	c.entries[key] = idempotencyEntry{msgs: msgs, expires: expires}
	for len(c.order) > c.limit {
		c.dropOldest()
	}
}

// expire drops keys from the front whose window has passed. A key with a
// longer window behind a shorter one waits for the next sweep, which only
// keeps it a little longer; lookup checks expiry itself.
func (c *idempotencyCache) expire(now time.Time) {
	for len(c.order) > 0 {
		e, ok := c.entries[c.order[0]]
		if ok && now.Before(e.expires) {
			return
		}
		c.dropOldest()
	}
}

func (c *idempotencyCache) dropOldest() {
	key := c.order[0]
	c.order[0] = ""
	c.order = c.order[1:]
	delete(c.entries, key)
}
