package redis

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/store"
)

// eventWait bounds every wait for something the stores do on their own
// (a delivery, a recovery). It is generous: when things work they happen in
// milliseconds, and a failing test says what it was waiting for.
const eventWait = 20 * time.Second

// clock is a settable clock for retention tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func keep(count int, age time.Duration) store.RetentionFunc {
	return func(string) store.Retention { return store.Retention{Count: count, Age: age} }
}

type storeOptions struct {
	name      string
	retention store.RetentionFunc
	clock     *clock
	logger    *zap.Logger
	url       string
}

// newStore opens a Redis store on srv with a collector listening to it,
// closed in t.Cleanup.
func newStore(t testing.TB, srv *redisServer, o storeOptions) (*Store, *collector) {
	t.Helper()
	if o.name == "" {
		o.name = strings.ReplaceAll(t.Name(), "/", ".")
	}
	if o.retention == nil {
		o.retention = keep(100, time.Hour)
	}
	if o.logger == nil {
		o.logger = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	if o.url == "" {
		o.url = srv.url()
	}
	opts := Options{URL: o.url, Name: o.name, Retention: o.retention, Logger: o.logger, NoSweeper: true}
	if o.clock != nil {
		opts.Now = o.clock.Now
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventWait)
	defer cancel()
	s, err := New(ctx, opts)
	if err != nil {
		t.Fatalf("new redis store: %v", err)
	}
	got := newCollector()
	s.Listen(got.deliver)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s, got
}

// collector is a DeliverFunc that keeps what it is handed and signals each
// delivery, so tests wait on deliveries instead of sleeping.
type collector struct {
	mu     sync.Mutex
	msgs   []*message.Message
	signal chan struct{}
}

func newCollector() *collector { return &collector{signal: make(chan struct{}, 1)} }

func (c *collector) deliver(msgs []*message.Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, msgs...)
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

func (c *collector) snapshot() []*message.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*message.Message(nil), c.msgs...)
}

// waitFor waits until cond holds for what was delivered, or fails saying
// what it waited for.
func (c *collector) waitFor(t testing.TB, what string, cond func([]*message.Message) bool) []*message.Message {
	t.Helper()
	deadline := time.NewTimer(eventWait)
	defer deadline.Stop()
	for {
		got := c.snapshot()
		if cond(got) {
			return got
		}
		select {
		case <-c.signal:
		case <-deadline.C:
			t.Fatalf("after %v still waiting for %s; delivered %d: %s", eventWait, what, len(got), summary(got))
		}
	}
}

// waitForLast waits until node has delivered last: the feed is in id
// order, so everything appended before it has arrived too.
func (c *collector) waitForLast(t testing.TB, node string, last *message.Message) []*message.Message {
	t.Helper()
	return c.waitFor(t, node+" to deliver the last message", func(got []*message.Message) bool {
		return len(got) > 0 && got[len(got)-1].ID == last.ID
	})
}

// waitMessages waits for n messages (notices not counted).
func (c *collector) waitMessages(t testing.TB, n int) []*message.Message {
	t.Helper()
	got := c.waitFor(t, fmt.Sprintf("%d messages", n), func(got []*message.Message) bool {
		return len(onlyMessages(got)) >= n
	})
	return onlyMessages(got)
}

func onlyMessages(msgs []*message.Message) []*message.Message {
	var out []*message.Message
	for _, m := range msgs {
		if !m.IsNotice() {
			out = append(out, m)
		}
	}
	return out
}

func hasNotice(event, channel string) func([]*message.Message) bool {
	return func(got []*message.Message) bool {
		for _, m := range got {
			if m.IsNotice() && m.Event == event && m.Channel == channel {
				return true
			}
		}
		return false
	}
}

func draft(channel, text string) message.Draft {
	d := message.Draft{Channel: channel, Type: "text/plain", Data: []byte(text)}
	if err := d.Normalize(); err != nil {
		panic(err)
	}
	return d
}

func appendOK(t testing.TB, s store.Store, key string, drafts ...message.Draft) []*message.Message {
	t.Helper()
	msgs, replayed, err := s.Append(context.Background(), drafts, key)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if replayed {
		t.Fatalf("append with key %q was answered as a replay", key)
	}
	return msgs
}

// summary lists messages compactly for failure messages: channel:data@seq,
// notices as event(channel).
func summary(msgs []*message.Message) string {
	const most = 12
	var out []string
	for i, m := range msgs {
		if i == most {
			out = append(out, fmt.Sprintf("… %d more", len(msgs)-most))
			break
		}
		if m.IsNotice() {
			out = append(out, m.Event+"("+m.Channel+")")
		} else {
			out = append(out, fmt.Sprintf("%s:%s@%d", m.Channel, m.Data, m.ID.Seq))
		}
	}
	return strings.Join(out, " ")
}

func texts(msgs []*message.Message) string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Channel+":"+string(m.Data))
	}
	return strings.Join(out, " ")
}
