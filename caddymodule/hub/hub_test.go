package hub_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/store"
	"github.com/cometbox/cometbox/caddymodule/store/memory"
)

// clock is a settable clock for retention tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newHub(t testing.TB, queue int, retention store.Retention) (*hub.Hub, *clock) {
	t.Helper()
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	st, err := memory.New(memory.Options{
		Retention: func(string) store.Retention { return retention },
		Now:       clk.Now,
		NoSweeper: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(st, hub.Options{QueueLimit: queue, Now: clk.Now})
	t.Cleanup(func() { h.Close() })
	return h, clk
}

func publish(t testing.TB, h *hub.Hub, channel, text string) *message.Message {
	t.Helper()
	d := message.Draft{Channel: channel, Type: "text/plain", Data: []byte(text)}
	if err := d.Normalize(); err != nil {
		t.Fatal(err)
	}
	out, _, err := h.Publish(context.Background(), []message.Draft{d}, "")
	if err != nil {
		t.Fatal(err)
	}
	return out[0].Message
}

func drain(q *hub.Queue) ([]*message.Message, error) { return q.Drain(nil, 0) }

func events(msgs []*message.Message) string {
	var out []string
	for _, m := range msgs {
		if m.IsNotice() {
			out = append(out, m.Event+"("+m.Channel+")")
		} else {
			out = append(out, m.Channel+":"+string(m.Data))
		}
	}
	return strings.Join(out, " ")
}

func TestMultiplexedSubscriptionGetsAllChannelsInIDOrder(t *testing.T) {
	h, _ := newHub(t, 64, store.Retention{Count: 10, Age: time.Hour})
	start := publish(t, h, "a", "0").ID
	publish(t, h, "a", "1")
	publish(t, h, "b", "2")
	publish(t, h, "c", "not held")
	q := hub.NewQueue(64, 0)
	sub, err := h.Subscribe(context.Background(), hub.SubscribeRequest{Channels: []string{"b", "a"}, Cursor: start}, q)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	publish(t, h, "b", "3")
	publish(t, h, "a", "4")
	got, _ := drain(q)
	if want := "a:1 b:2 b:3 a:4"; events(got) != want {
		t.Fatalf("got %q, want %q", events(got), want)
	}
	if sub.Position() != got[len(got)-1].ID {
		t.Fatalf("position %v, want %v", sub.Position(), got[len(got)-1].ID)
	}
}

func TestSlowConsumerIsCutWithoutBlockingThePublisher(t *testing.T) {
	h, _ := newHub(t, 3, store.Retention{Count: 100, Age: time.Hour})
	slow, fast := hub.NewQueue(3, 0), hub.NewQueue(100, 0)
	for _, q := range []*hub.Queue{slow, fast} {
		sub, err := h.Subscribe(context.Background(), hub.SubscribeRequest{Channels: []string{"x"}}, q)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
	}
	for i := range 10 {
		publish(t, h, "x", fmt.Sprint(i))
	}
	got, ended := drain(slow)
	if len(got) != 3 || ended != hub.ErrSlowConsumer {
		t.Fatalf("slow: got %d frames, ended %v; want 3 and ErrSlowConsumer", len(got), ended)
	}
	if got, ended := drain(fast); len(got) != 10 || ended != nil {
		t.Fatalf("fast: got %d frames, ended %v", len(got), ended)
	}
	if n := h.Stats().SlowConsumers; n != 1 {
		t.Fatalf("slow consumers counted: %d", n)
	}
}

func TestDeletingOneChannelOfAMultiplexKeepsTheOthers(t *testing.T) {
	h, _ := newHub(t, 16, store.Retention{Count: 10, Age: time.Hour})
	q := hub.NewQueue(16, 0)
	sub, err := h.Subscribe(context.Background(), hub.SubscribeRequest{Channels: []string{"a", "b"}}, q)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	publish(t, h, "a", "1")
	info, found, err := h.Delete(context.Background(), "a")
	if err != nil || !found || info.Messages != 1 || info.Subscribers != 1 {
		t.Fatalf("delete: %+v %v %v", info, found, err)
	}
	publish(t, h, "a", "after delete")
	publish(t, h, "b", "2")
	got, ended := drain(q)
	if want := "a:1 comet.deleted(a) b:2"; events(got) != want || ended != nil {
		t.Fatalf("got %q (ended %v), want %q", events(got), ended, want)
	}
	if _, _, err := h.Delete(context.Background(), "b"); err != nil {
		t.Fatal(err)
	}
	if _, ended := drain(q); ended != hub.ErrChannelsDeleted {
		t.Fatalf("after the last channel was deleted: ended %v", ended)
	}
}

func TestRetentionByAgeAndCountResetsOlderCursors(t *testing.T) {
	h, clk := newHub(t, 16, store.Retention{Count: 3, Age: time.Minute})
	first := publish(t, h, "r", "1").ID
	publish(t, h, "r", "2")
	clk.advance(2 * time.Minute) // "1" and "2" age out
	third := publish(t, h, "r", "3").ID
	publish(t, h, "r", "4")

	cases := []struct {
		cursor message.Cursor
		want   string
	}{
		{first, "comet.reset(r) r:3 r:4"},
		{third, "r:4"},
		{message.Earliest, "r:3 r:4"},
	}
	for _, tc := range cases {
		q := hub.NewQueue(16, 0)
		sub, err := h.Subscribe(context.Background(), hub.SubscribeRequest{Channels: []string{"r"}, Cursor: tc.cursor}, q)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := drain(q)
		sub.Close()
		if events(got) != tc.want {
			t.Errorf("from %v: got %q, want %q", tc.cursor, events(got), tc.want)
		}
	}
}

func TestIdempotencyKeyStoresOnce(t *testing.T) {
	h, _ := newHub(t, 16, store.Retention{Count: 10, Age: time.Hour})
	d := message.Draft{Channel: "k", Type: "text/plain", Data: []byte("once")}
	first, replayed, err := h.Publish(context.Background(), []message.Draft{d}, "key-1")
	if err != nil || replayed {
		t.Fatal(err, replayed)
	}
	again, replayed, err := h.Publish(context.Background(), []message.Draft{d}, "key-1")
	if err != nil || !replayed || again[0].Message.ID != first[0].Message.ID {
		t.Fatalf("retry: replayed %v, id %v want %v (%v)", replayed, again[0].Message.ID, first[0].Message.ID, err)
	}
	info, _, _ := h.Info(context.Background(), "k")
	if info.Messages != 1 {
		t.Fatalf("stored %d messages, want 1", info.Messages)
	}
}

func TestSubscriberCountsFollowConnections(t *testing.T) {
	h, _ := newHub(t, 16, store.Retention{Count: 10, Age: time.Hour})
	sub, err := h.Subscribe(context.Background(), hub.SubscribeRequest{Channels: []string{"a", "b"}, Transport: "sse"}, hub.NewQueue(4, 0))
	if err != nil {
		t.Fatal(err)
	}
	if st := h.Stats(); st.Subscribers["sse"] != 1 || st.Channels != 2 {
		t.Fatalf("while held: %+v", st)
	}
	sub.Close()
	sub.Close()
	if st := h.Stats(); st.Subscribers["sse"] != 0 || st.Channels != 0 {
		t.Fatalf("after close: %+v", st)
	}
}

// A subscription keeps the channel list of its request and never changes
// it: the caller may still read it. A channel left or deleted is let go,
// and closing lists the subscription nowhere.
func TestLeavingAndDeletingChannelsLeaveTheRequestsListAsItWas(t *testing.T) {
	h, _ := newHub(t, 16, store.Retention{Count: 10, Age: time.Hour})
	channels := []string{"a", "b", "c"}
	sub, err := h.Subscribe(context.Background(), hub.SubscribeRequest{Channels: channels, Transport: "ws"}, hub.NewQueue(16, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !sub.Leave("a") {
		t.Fatal("leave a: not held")
	}
	if _, _, err := h.Delete(context.Background(), "b"); err != nil {
		t.Fatal(err)
	}
	if got := sub.Channels(); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("held after leaving a and deleting b: %v", got)
	}
	if !slices.Equal(channels, []string{"a", "b", "c"}) {
		t.Fatalf("the request's list was changed: %v", channels)
	}
	if st := h.Stats(); st.Channels != 1 || st.Subscribers["ws"] != 1 {
		t.Fatalf("while c is held: %+v", st)
	}
	sub.Close()
	if st := h.Stats(); st.Channels != 0 || st.Subscribers["ws"] != 0 {
		t.Fatalf("after close: %+v", st)
	}
}

// racingStore publishes on two channels right after the first history read,
// as a concurrent publisher could between the reads of a multiplexed
// subscription.
type racingStore struct {
	*memory.Store
	raced bool
}

func (s *racingStore) Since(ctx context.Context, channel string, after message.Cursor) ([]*message.Message, bool, error) {
	msgs, complete, err := s.Store.Since(ctx, channel, after)
	if !s.raced {
		s.raced = true
		for _, ch := range []string{"a", "b"} {
			d := message.Draft{Channel: ch, Type: "text/plain", Data: []byte("raced " + ch)}
			d.Normalize()
			s.Store.Append(ctx, []message.Draft{d}, "")
		}
	}
	return msgs, complete, err
}

func TestPublishesBetweenHistoryReadsAreNotLost(t *testing.T) {
	mem, err := memory.New(memory.Options{Retention: func(string) store.Retention { return store.Retention{Count: 10, Age: time.Hour} }, NoSweeper: true})
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(&racingStore{Store: mem}, hub.Options{QueueLimit: 16})
	defer h.Close()
	q := hub.NewQueue(16, 0)
	sub, err := h.Subscribe(context.Background(), hub.SubscribeRequest{Channels: []string{"a", "b"}, Cursor: message.Earliest}, q)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got, _ := drain(q)
	if want := "a:raced a b:raced b"; events(got) != want {
		t.Fatalf("got %q, want %q", events(got), want)
	}
}

// laggingStore delivers each append after the clock moved on by lag, as a
// shared store's feed reaches another node some time after the publish.
type laggingStore struct {
	*memory.Store
	clk *clock
	lag time.Duration
}

func (s *laggingStore) Listen(deliver store.DeliverFunc) {
	s.Store.Listen(func(msgs []*message.Message) {
		s.clk.advance(s.lag)
		deliver(msgs)
	})
}

func TestDeliveryLagIsTheNewestMessagesWait(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	st, err := memory.New(memory.Options{
		Retention: func(string) store.Retention { return store.Retention{Count: 10, Age: time.Hour} },
		Now:       clk.Now,
		NoSweeper: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(&laggingStore{Store: st, clk: clk, lag: 250 * time.Millisecond}, hub.Options{QueueLimit: 4, Now: clk.Now})
	t.Cleanup(func() { h.Close() })
	if lag := h.Stats().DeliveryLag; lag != 0 {
		t.Fatalf("before any delivery: lag %v", lag)
	}
	publish(t, h, "a", "late")
	if lag := h.Stats().DeliveryLag; lag != 250*time.Millisecond {
		t.Fatalf("delivery lag %v, want the 250ms the store took", lag)
	}
}
