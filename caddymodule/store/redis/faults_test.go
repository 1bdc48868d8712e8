package redis

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/store"
)

// Log messages the tests wait for: the reader's outage and recovery.
const (
	logOutage   = "redis unavailable"
	logRecovery = "redis available again"
)

// logRecorder keeps the messages a store logs and signals each, so tests
// can wait for "the reader saw the outage" as an event.
type logRecorder struct {
	mu     sync.Mutex
	msgs   []string
	signal chan struct{}
}

func recordLogs(t testing.TB) (*zap.Logger, *logRecorder) {
	rec := &logRecorder{signal: make(chan struct{}, 1)}
	hook := zap.Hooks(func(e zapcore.Entry) error {
		rec.mu.Lock()
		rec.msgs = append(rec.msgs, e.Message)
		rec.mu.Unlock()
		select {
		case rec.signal <- struct{}{}:
		default:
		}
		return nil
	})
	return zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel), zaptest.WrapOptions(hook)), rec
}

func (r *logRecorder) count(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

func (r *logRecorder) waitFor(t testing.TB, who, prefix string, n int) {
	t.Helper()
	deadline := time.NewTimer(eventWait)
	defer deadline.Stop()
	for r.count(prefix) < n {
		select {
		case <-r.signal:
		case <-deadline.C:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("%s: after %v still waiting for log %q (x%d); logged: %q", who, eventWait, prefix, n, r.msgs)
		}
	}
}

func TestRedisOutageRefusesAppendsAndLosesNothing(t *testing.T) {
	cases := []struct {
		name     string
		down, up func(*redisServer)
	}{
		// Frozen: connections stay open, nothing answers, commands time out.
		{"paused", (*redisServer).pause, (*redisServer).resume},
		// Gone: connections drop and are refused; it comes back with its data.
		{"restarted", (*redisServer).shutdownSave, (*redisServer).start},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startRedis(t)
			logA, recA := recordLogs(t)
			logB, recB := recordLogs(t)
			a, gotA := newStore(t, srv, storeOptions{name: "shared", logger: logA})
			b, gotB := newStore(t, srv, storeOptions{name: "shared", logger: logB})
			nodes := []*Store{a, b}
			appended := make(map[message.Cursor]*message.Message)
			publish := func(from, to int) {
				for i := from; i < to; i++ {
					m := appendOK(t, nodes[i%2], "", draft("o", strconv.Itoa(i)))[0]
					appended[m.ID] = m
				}
			}
			publish(0, 50)

			tc.down(srv)
			const refused = 6
			var wg sync.WaitGroup
			errs := make([]error, refused)
			for i := range refused {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _, errs[i] = nodes[i%2].Append(context.Background(), []message.Draft{draft("o", "outage-"+strconv.Itoa(i))}, "outage-"+strconv.Itoa(i))
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if !errors.Is(err, store.ErrUnavailable) {
					t.Fatalf("append %d during the outage: %v; want store.ErrUnavailable", i, err)
				}
			}
			recA.waitFor(t, "node a", logOutage, 1)
			recB.waitFor(t, "node b", logOutage, 1)

			tc.up(srv)
			recA.waitFor(t, "node a", logRecovery, 1)
			recB.waitFor(t, "node b", logRecovery, 1)

			// The publisher retries what was refused, with its key, through
			// the other node. A frozen Redis may have run a refused append
			// once it thawed; the key then answers the stored ids.
			for i := range refused {
				key := "outage-" + strconv.Itoa(i)
				msgs, _, err := nodes[(i+1)%2].Append(context.Background(), []message.Draft{draft("o", key)}, key)
				if err != nil {
					t.Fatalf("retry of %s after the outage: %v", key, err)
				}
				appended[msgs[0].ID] = msgs[0]
			}
			publish(50, 100)

			last := appendOK(t, a, "", draft("o", "end"))[0]
			appended[last.ID] = last
			checkFeed(t, "node a", gotA.waitForLast(t, "node a", last), appended)
			checkFeed(t, "node b", gotB.waitForLast(t, "node b", last), appended)
			for _, n := range []struct {
				name string
				rec  *logRecorder
			}{{"node a", recA}, {"node b", recB}} {
				if o, r := n.rec.count(logOutage), n.rec.count(logRecovery); o != 1 || r != 1 {
					t.Errorf("%s logged the outage %d times and the recovery %d times; want once each", n.name, o, r)
				}
			}
		})
	}
}

func TestLostHistoryStartsANewEpochAndAsksSubscribersToReconnect(t *testing.T) {
	nothing := func(*redisServer) {}
	crash := func(srv *redisServer) { srv.kill(); srv.start() }
	cases := []struct {
		name    string
		prepare func(*redisServer) // before the message that gets lost
		lose    func(*redisServer)
		reason  string
	}{
		{"FLUSHALL", nothing, func(srv *redisServer) { srv.do("FLUSHALL") }, reasonNewEpoch},
		{"restarted empty", nothing, crash, reasonNewEpoch},
		// Same epoch, but its counter went back: the ids after it would
		// be handed out twice.
		{"restarted from an older snapshot", func(srv *redisServer) { srv.do("SAVE") }, crash, reasonRolledBack},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startRedis(t)
			a, gotA := newStore(t, srv, storeOptions{name: "shared"})
			b, gotB := newStore(t, srv, storeOptions{name: "shared"})
			tc.prepare(srv)
			old := appendOK(t, a, "", draft("f", "1"))[0]
			gotA.waitMessages(t, 1)
			gotB.waitMessages(t, 1)

			tc.lose(srv)
			// The node that finds the loss first names its cause; the other
			// may only find the epoch changed.
			var reasons []string
			for _, got := range []*collector{gotA, gotB} {
				all := got.waitFor(t, "a reconnect notice without a channel", hasNotice(message.Reconnect, ""))
				reasons = append(reasons, string(all[len(all)-1].Data))
			}
			if !strings.Contains(strings.Join(reasons, " "), tc.reason) {
				t.Errorf("reconnect notices %q; want one with the reason %q", reasons, tc.reason)
			}
			head, err := a.Head(context.Background())
			if err != nil || head.Epoch == old.ID.Epoch || head.Epoch == "" {
				t.Fatalf("head after the loss: %v (%v); want a new epoch, not %s", head, err, old.ID.Epoch)
			}
			for _, s := range []*Store{a, b} {
				msgs, complete, err := s.Since(context.Background(), "f", old.ID)
				if err != nil || complete || len(msgs) != 0 {
					t.Fatalf("since a cursor of the lost epoch: %q complete=%v err=%v; want nothing, incomplete", texts(msgs), complete, err)
				}
			}

			fresh := appendOK(t, b, "", draft("f", "2"))[0]
			if fresh.ID != (message.Cursor{Epoch: head.Epoch, Seq: 1}) {
				t.Fatalf("first id of the new epoch: %v, want %s-1", fresh.ID, head.Epoch)
			}
			for _, got := range []*collector{gotA, gotB} {
				got.waitFor(t, "the first message of the new epoch", func(got []*message.Message) bool {
					return len(got) > 0 && got[len(got)-1].ID == fresh.ID
				})
			}
			if msgs, complete, err := a.Since(context.Background(), "f", fresh.ID); err != nil || !complete || len(msgs) != 0 {
				t.Fatalf("since the new head: %q complete=%v err=%v", texts(msgs), complete, err)
			}
		})
	}
}

func TestReaderThatFellBehindTheFeedAsksSubscribersToReconnect(t *testing.T) {
	srv := startRedis(t)
	s, _ := newStore(t, srv, storeOptions{})
	s.feedLength = 10 // set before any append; only Append reads it

	got := newCollector()
	gate, entered := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.Listen(func(msgs []*message.Message) {
		once.Do(func() {
			close(entered)
			<-gate // the hub is stuck: the reader cannot go on
		})
		got.deliver(msgs)
	})
	var opened sync.Once
	open := func() { opened.Do(func() { close(gate) }) }
	t.Cleanup(open) // runs before the store's Close, which waits for the reader

	first := appendOK(t, s, "", draft("g", "first"))[0]
	select {
	case <-entered:
	case <-time.After(eventWait):
		t.Fatalf("the reader did not deliver the first message within %v", eventWait)
	}
	for i := range 10 {
		drafts := make([]message.Draft, 100)
		for j := range drafts {
			drafts[j] = draft("g", strconv.Itoa(100*i+j))
		}
		appendOK(t, s, "", drafts...)
	}
	if n, _ := srv.do("XLEN", s.keys.feed(first.ID.Epoch)).(int64); n >= 1000 {
		t.Fatalf("the feed holds %d entries; the test needs it trimmed", n)
	}
	open()

	all := got.waitFor(t, "a reconnect notice", hasNotice(message.Reconnect, ""))
	after := appendOK(t, s, "", draft("g", "after"))[0]
	all = got.waitFor(t, "the message after the resync", func(got []*message.Message) bool {
		return len(got) > 0 && got[len(got)-1].ID == after.ID
	})
	if len(all) != 3 || all[0].ID != first.ID || !strings.Contains(string(all[1].Data), reasonFeedTrimmed) {
		t.Fatalf("delivered %s; want the first message, a reconnect notice (%s), the message after", summary(all), reasonFeedTrimmed)
	}
}

func TestStoreStartedWhileRedisIsDownServesOnceItIsUp(t *testing.T) {
	srv := newRedisServer(t)
	logger, rec := recordLogs(t)
	s, got := newStore(t, srv, storeOptions{logger: logger})

	ctx := context.Background()
	ops := map[string]func() error{
		"append": func() error { _, _, err := s.Append(ctx, []message.Draft{draft("d", "x")}, ""); return err },
		"since":  func() error { _, _, err := s.Since(ctx, "d", message.Earliest); return err },
		"head":   func() error { _, err := s.Head(ctx); return err },
		"info":   func() error { _, _, err := s.Info(ctx, "d"); return err },
		"delete": func() error { _, _, err := s.Delete(ctx, "d"); return err },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s without Redis: %v; want store.ErrUnavailable", name, err)
		}
	}
	rec.waitFor(t, "store", logOutage, 1)

	srv.start()
	got.waitFor(t, "the reconnect notice of the first contact", hasNotice(message.Reconnect, ""))
	m := appendOK(t, s, "", draft("d", "up"))[0]
	got.waitFor(t, "the first message", func(got []*message.Message) bool {
		return len(got) > 0 && got[len(got)-1].ID == m.ID
	})
	rec.waitFor(t, "store", logRecovery, 1)
	if n := rec.count(logOutage); n != 1 {
		t.Errorf("the outage was logged %d times; want once", n)
	}
}

func TestCloseStopsTheReaderWhileItWaitsOnTheFeed(t *testing.T) {
	srv := startRedis(t)
	s, err := New(context.Background(), Options{URL: srv.url(), NoSweeper: false})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(feedBlock + defaultTimeout):
		t.Fatalf("close did not return within %v", feedBlock+defaultTimeout)
	}
	if _, _, err := s.Append(context.Background(), []message.Draft{draft("z", "late")}, ""); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("append after close: %v; want store.ErrUnavailable", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}
