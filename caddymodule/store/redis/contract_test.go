package redis

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/store"
	"github.com/cometbox/cometbox/caddymodule/store/memory"
)

// The contract tests run every case against the memory store and the Redis
// store alike: the hub relies on one behaviour, whichever store it has.

// contract is one store under test and what the cases need around it.
type contract struct {
	store.Store
	clock *clock
	got   *collector
	sweep func(t *testing.T)
}

func eachStore(t *testing.T, retention store.RetentionFunc, test func(t *testing.T, c *contract)) {
	srv := startRedis(t)
	t.Run("store=memory", func(t *testing.T) {
		clk := newClock()
		st, err := memory.New(memory.Options{Retention: retention, Now: clk.Now, NoSweeper: true})
		if err != nil {
			t.Fatal(err)
		}
		got := newCollector()
		st.Listen(got.deliver)
		t.Cleanup(func() { st.Close() })
		test(t, &contract{Store: st, clock: clk, got: got, sweep: func(*testing.T) { st.Sweep() }})
	})
	t.Run("store=redis", func(t *testing.T) {
		clk := newClock()
		st, got := newStore(t, srv, storeOptions{retention: retention, clock: clk})
		test(t, &contract{Store: st, clock: clk, got: got, sweep: func(t *testing.T) {
			if err := st.Sweep(context.Background()); err != nil {
				t.Fatalf("sweep: %v", err)
			}
		}})
	})
}

func (c *contract) since(t *testing.T, channel string, after message.Cursor) ([]*message.Message, bool) {
	t.Helper()
	msgs, complete, err := c.Since(context.Background(), channel, after)
	if err != nil {
		t.Fatalf("since %v on %s: %v", after, channel, err)
	}
	return msgs, complete
}

func (c *contract) info(t *testing.T, channel string) (store.Info, bool) {
	t.Helper()
	info, found, err := c.Info(context.Background(), channel)
	if err != nil {
		t.Fatalf("info %s: %v", channel, err)
	}
	return info, found
}

func (c *contract) head(t *testing.T) message.Cursor {
	t.Helper()
	head, err := c.Head(context.Background())
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	return head
}

func TestAppendGivesConsecutiveIDsInPublishOrder(t *testing.T) {
	eachStore(t, keep(100, time.Hour), func(t *testing.T, c *contract) {
		if head := c.head(t); head.Epoch == "" || head.Seq != 0 {
			t.Fatalf("head of an empty store: %v, want the epoch with seq 0", head)
		}
		msgs := appendOK(t, c, "", draft("a", "1"), draft("b", "2"), draft("a", "3"))
		msgs = append(msgs, appendOK(t, c, "", draft("b", "4"))...)
		for i, m := range msgs {
			if m.ID.Seq != uint64(i+1) || m.ID.Epoch != msgs[0].ID.Epoch {
				t.Fatalf("message %d has id %v; want seq %d in one epoch (%v)", i, m.ID, i+1, msgs[0].ID.Epoch)
			}
		}
		if head := c.head(t); head != msgs[3].ID {
			t.Fatalf("head %v, want %v", head, msgs[3].ID)
		}
		got := c.got.waitMessages(t, 4)
		if len(got) != 4 {
			t.Fatalf("delivered %d messages, want 4: %s", len(got), summary(got))
		}
		for i, m := range got {
			// A message re-encoded from Redis must be byte for byte the
			// envelope the publishing node made.
			if m.ID != msgs[i].ID || !bytes.Equal(m.SSE(), msgs[i].SSE()) {
				t.Fatalf("delivered %d:\n%s\nwant\n%s", i, m.SSE(), msgs[i].SSE())
			}
		}
	})
}

func TestSinceReturnsWhatTheCursorMissed(t *testing.T) {
	eachStore(t, keep(100, time.Hour), func(t *testing.T, c *contract) {
		a0 := appendOK(t, c, "", draft("a", "0"))[0]
		appendOK(t, c, "", draft("a", "1"), draft("b", "2"))
		appendOK(t, c, "", draft("a", "3"))
		cases := []struct {
			channel string
			after   message.Cursor
			want    string
		}{
			{"a", a0.ID, "a:1 a:3"},
			{"a", message.Earliest, "a:0 a:1 a:3"},
			{"b", a0.ID, "b:2"},
			{"b", c.head(t), ""},
			{"never", a0.ID, ""},
		}
		for _, tc := range cases {
			got, complete := c.since(t, tc.channel, tc.after)
			if texts(got) != tc.want || !complete {
				t.Errorf("since %v on %s: %q complete=%v; want %q complete", tc.after, tc.channel, texts(got), complete, tc.want)
			}
		}
	})
}

func TestSinceIsIncompleteWhenItCannotProveCompleteness(t *testing.T) {
	eachStore(t, keep(3, time.Hour), func(t *testing.T, c *contract) {
		var a []*message.Message
		for _, text := range []string{"1", "2", "3", "4", "5"} {
			a = append(a, appendOK(t, c, "", draft("a", text))[0])
		}
		epoch := a[0].ID.Epoch
		cases := []struct {
			name     string
			after    message.Cursor
			want     string
			complete bool
		}{
			{"earliest", message.Earliest, "a:3 a:4 a:5", true},
			{"at the newest trimmed message", a[1].ID, "a:3 a:4 a:5", true},
			{"retained", a[2].ID, "a:4 a:5", true},
			{"head", a[4].ID, "", true},
			{"older than what is retained", a[0].ID, "a:3 a:4 a:5", false},
			{"another epoch", message.Cursor{Epoch: "zzzzzzzz", Seq: 4}, "a:3 a:4 a:5", false},
			{"ahead of the head", message.Cursor{Epoch: epoch, Seq: 6}, "a:3 a:4 a:5", false},
			{"far ahead", message.Cursor{Epoch: epoch, Seq: 1<<64 - 1}, "a:3 a:4 a:5", false},
		}
		for _, tc := range cases {
			got, complete := c.since(t, "a", tc.after)
			if texts(got) != tc.want || complete != tc.complete {
				t.Errorf("%s (%v): %q complete=%v; want %q complete=%v", tc.name, tc.after, texts(got), complete, tc.want, tc.complete)
			}
		}
	})
}

func TestRetentionByCountAndAge(t *testing.T) {
	eachStore(t, keep(3, time.Minute), func(t *testing.T, c *contract) {
		first := appendOK(t, c, "", draft("r", "1"))[0]
		appendOK(t, c, "", draft("r", "2"))
		c.clock.advance(2 * time.Minute) // "1" and "2" age out
		third := appendOK(t, c, "", draft("r", "3"))[0]
		fourth := appendOK(t, c, "", draft("r", "4"))[0]

		cases := []struct {
			after    message.Cursor
			want     string
			complete bool
		}{
			{first.ID, "r:3 r:4", false},
			{third.ID, "r:4", true},
			{message.Earliest, "r:3 r:4", true},
		}
		for _, tc := range cases {
			got, complete := c.since(t, "r", tc.after)
			if texts(got) != tc.want || complete != tc.complete {
				t.Errorf("from %v: %q complete=%v; want %q complete=%v", tc.after, texts(got), complete, tc.want, tc.complete)
			}
		}
		if info, found := c.info(t, "r"); !found || info.Messages != 2 || info.LastID != fourth.ID {
			t.Errorf("info %+v found=%v; want 2 messages, last %v", info, found, fourth.ID)
		}

		// Age applies as history is read, with no publish to trim it.
		c.clock.advance(2 * time.Minute)
		if got, complete := c.since(t, "r", message.Earliest); len(got) != 0 || !complete {
			t.Errorf("earliest after everything aged out: %q complete=%v", texts(got), complete)
		}
		if got, complete := c.since(t, "r", third.ID); len(got) != 0 || complete {
			t.Errorf("from %v after everything aged out: %q complete=%v; want nothing, incomplete", third.ID, texts(got), complete)
		}
		if got, complete := c.since(t, "r", fourth.ID); len(got) != 0 || !complete {
			t.Errorf("from the newest after everything aged out: %q complete=%v; want nothing, complete", texts(got), complete)
		}
		if info, found := c.info(t, "r"); !found || info.Messages != 0 || info.LastID != fourth.ID {
			t.Errorf("info after everything aged out: %+v found=%v", info, found)
		}
	})
}

func TestSetRetentionAppliesToReadsAtOnce(t *testing.T) {
	eachStore(t, keep(10, time.Hour), func(t *testing.T, c *contract) {
		var msgs []*message.Message
		for _, text := range []string{"1", "2", "3", "4"} {
			msgs = append(msgs, appendOK(t, c, "", draft("s", text))[0])
		}
		c.SetRetention(keep(2, time.Hour))
		if got, complete := c.since(t, "s", msgs[0].ID); texts(got) != "s:3 s:4" || complete {
			t.Errorf("after shrinking to 2: %q complete=%v; want s:3 s:4, incomplete", texts(got), complete)
		}
		if info, _ := c.info(t, "s"); info.Messages != 2 {
			t.Errorf("info after shrinking to 2: %+v", info)
		}
		appendOK(t, c, "", draft("s", "5"))
		if got, complete := c.since(t, "s", msgs[2].ID); texts(got) != "s:4 s:5" || !complete {
			t.Errorf("after the next append: %q complete=%v; want s:4 s:5, complete", texts(got), complete)
		}
	})
}

func TestDeleteDropsHistoryAndEndsSubscribers(t *testing.T) {
	eachStore(t, keep(100, time.Hour), func(t *testing.T, c *contract) {
		old := appendOK(t, c, "", draft("x", "1"))[0]
		last := appendOK(t, c, "", draft("x", "2"))[0]
		info, found, err := c.Delete(context.Background(), "x")
		if err != nil || !found || info.Messages != 2 || info.LastID != last.ID || info.Channel != "x" {
			t.Fatalf("delete: %+v found=%v err=%v; want 2 messages, last %v", info, found, err, last.ID)
		}
		got := c.got.waitFor(t, "a deleted notice for x", hasNotice(message.Deleted, "x"))
		if n := got[len(got)-1]; !n.IsNotice() || n.Event != message.Deleted {
			t.Fatalf("the notice is not the last delivery: %s", summary(got))
		}
		if info, found := c.info(t, "x"); found {
			t.Errorf("info after delete: %+v, found", info)
		}
		// The history is gone: an old cursor cannot be proven complete,
		// a cursor past it can.
		if got, complete := c.since(t, "x", old.ID); len(got) != 0 || complete {
			t.Errorf("since an old cursor after delete: %q complete=%v", texts(got), complete)
		}
		if got, complete := c.since(t, "x", last.ID); len(got) != 0 || !complete {
			t.Errorf("since the last id after delete: %q complete=%v", texts(got), complete)
		}
		// A channel made afresh cannot vouch for cursors from before.
		fresh := appendOK(t, c, "", draft("x", "3"))[0]
		if got, complete := c.since(t, "x", old.ID); texts(got) != "x:3" || complete {
			t.Errorf("recreated channel, old cursor: %q complete=%v", texts(got), complete)
		}
		if got, complete := c.since(t, "x", last.ID); texts(got) != "x:3" || !complete {
			t.Errorf("recreated channel, cursor at the delete: %q complete=%v", texts(got), complete)
		}
		// Deleting a channel without history still ends its subscribers.
		info, found, err = c.Delete(context.Background(), "nothing")
		if err != nil || found || info.Messages != 0 {
			t.Fatalf("delete unknown: %+v found=%v err=%v", info, found, err)
		}
		c.got.waitFor(t, "a deleted notice for an unknown channel", hasNotice(message.Deleted, "nothing"))
		_ = fresh
	})
}

func TestIdempotencyKeyAnswersTheFirstAppendWithinTheWindow(t *testing.T) {
	eachStore(t, keep(100, time.Minute), func(t *testing.T, c *contract) {
		batch := []message.Draft{draft("k", "once"), draft("j", "too")}
		first := appendOK(t, c, "key-1", batch...)
		for range 2 {
			again, replayed, err := c.Append(context.Background(), batch, "key-1")
			if err != nil || !replayed || len(again) != 2 {
				t.Fatalf("retry: %d messages replayed=%v err=%v", len(again), replayed, err)
			}
			for i := range again {
				if again[i].ID != first[i].ID || !bytes.Equal(again[i].Line(), first[i].Line()) {
					t.Fatalf("retry answered %s, want %s", again[i].Line(), first[i].Line())
				}
			}
		}
		if info, _ := c.info(t, "k"); info.Messages != 1 {
			t.Fatalf("stored %d messages under one key, want 1", info.Messages)
		}
		// Past the first channel's retention age the key is forgotten.
		c.clock.advance(2 * time.Minute)
		later := appendOK(t, c, "key-1", batch...)
		if later[0].ID.Seq != first[1].ID.Seq+1 {
			t.Fatalf("after the window: id %v, want a new one after %v", later[0].ID, first[1].ID)
		}
		// Each message reached the deliver function once.
		got := c.got.waitMessages(t, 4)
		if len(got) != 4 {
			t.Fatalf("delivered %d messages, want 4: %s", len(got), summary(got))
		}
	})
}

func TestSweepForgetsChannelsWhoseHistoryAgedOut(t *testing.T) {
	eachStore(t, keep(100, time.Minute), func(t *testing.T, c *contract) {
		gone := appendOK(t, c, "", draft("idle", "1"))[0]
		c.clock.advance(30 * time.Second)
		kept := appendOK(t, c, "", draft("busy", "2"))[0]
		c.clock.advance(45 * time.Second) // idle's only message is 75s old, busy's 45s
		c.sweep(t)
		if info, found := c.info(t, "idle"); found {
			t.Errorf("idle channel still known after the sweep: %+v", info)
		}
		if info, found := c.info(t, "busy"); !found || info.Messages != 1 {
			t.Errorf("busy channel after the sweep: %+v found=%v", info, found)
		}
		if got, complete := c.since(t, "idle", message.Cursor{Epoch: gone.ID.Epoch, Seq: gone.ID.Seq - 1}); len(got) != 0 || complete {
			t.Errorf("forgotten channel, cursor before its message: %q complete=%v", texts(got), complete)
		}
		if got, complete := c.since(t, "idle", kept.ID); len(got) != 0 || !complete {
			t.Errorf("forgotten channel, current cursor: %q complete=%v", texts(got), complete)
		}
	})
}
