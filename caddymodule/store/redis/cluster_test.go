package redis

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/cometbox/cometbox/caddymodule/message"
)

// checkFeed verifies what one node delivered against what was appended:
// every appended message exactly once, in id order, with the publishing
// node's envelope, and no notice.
func checkFeed(t *testing.T, node string, got []*message.Message, want map[message.Cursor]*message.Message) {
	t.Helper()
	seen := make(map[message.Cursor]bool, len(got))
	var prev message.Cursor
	for i, m := range got {
		if m.IsNotice() {
			t.Fatalf("%s: delivery %d is a notice %s (%s)", node, i, m.Event, m.Data)
		}
		if seen[m.ID] {
			t.Fatalf("%s: %v delivered twice", node, m.ID)
		}
		seen[m.ID] = true
		if i > 0 && (m.ID.Epoch != prev.Epoch || m.ID.Seq <= prev.Seq) {
			t.Fatalf("%s: delivery %d is %v after %v: not in id order", node, i, m.ID, prev)
		}
		prev = m.ID
		w, ok := want[m.ID]
		if !ok {
			t.Fatalf("%s: delivered %v, which was never appended", node, m.ID)
		}
		if !bytes.Equal(m.Line(), w.Line()) {
			t.Fatalf("%s: %v delivered as %s, appended as %s", node, m.ID, m.Line(), w.Line())
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("%s: delivered %d of %d messages", node, len(seen), len(want))
	}
}

func TestTwoStoresDeliverEveryMessageOnceInIDOrder(t *testing.T) {
	srv := startRedis(t)
	a, gotA := newStore(t, srv, storeOptions{name: "shared"})
	b, gotB := newStore(t, srv, storeOptions{name: "shared"})
	nodes := []*Store{a, b}

	const total, publishers = 10_000, 4
	var (
		mu       sync.Mutex
		appended = make(map[message.Cursor]*message.Message, total)
		wg       sync.WaitGroup
		errs     = make(chan error, publishers)
	)
	// Publishers run at once, each alternating between the two nodes, so
	// the nodes' appends interleave in Redis.
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < total; i += publishers {
				d := draft("ch"+strconv.Itoa(i%8), strconv.Itoa(i))
				msgs, _, err := nodes[i%2].Append(context.Background(), []message.Draft{d}, "")
				if err != nil {
					errs <- fmt.Errorf("append %d through node %d: %w", i, i%2, err)
					return
				}
				mu.Lock()
				appended[msgs[0].ID] = msgs[0]
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// A last message proves nothing more is on its way: the feed is in
	// id order, so once it arrived everything before it has too.
	last := appendOK(t, a, "", draft("end", "end"))[0]
	appended[last.ID] = last
	checkFeed(t, "node a", gotA.waitForLast(t, "node a", last), appended)
	checkFeed(t, "node b", gotB.waitForLast(t, "node b", last), appended)
}

func TestCursorAndIdempotencyKeyWorkAcrossNodes(t *testing.T) {
	srv := startRedis(t)
	a, _ := newStore(t, srv, storeOptions{name: "shared"})
	b, gotB := newStore(t, srv, storeOptions{name: "shared"})

	first := appendOK(t, a, "", draft("c", "1"))[0]
	appendOK(t, b, "", draft("c", "2"))
	appendOK(t, a, "", draft("c", "3"))
	// A client that read "1" on node a resumes on node b.
	got, complete, err := b.Since(context.Background(), "c", first.ID)
	if err != nil || !complete || texts(got) != "c:2 c:3" {
		t.Fatalf("resume on the other node: %q complete=%v err=%v", texts(got), complete, err)
	}

	// A publisher retrying through the other node gets the first answer.
	once := appendOK(t, a, "retry-1", draft("c", "once"))[0]
	again, replayed, err := b.Append(context.Background(), []message.Draft{draft("c", "once")}, "retry-1")
	if err != nil || !replayed || again[0].ID != once.ID || !bytes.Equal(again[0].Line(), once.Line()) {
		t.Fatalf("retry through the other node: %v replayed=%v err=%v; want %v replayed", again, replayed, err, once.ID)
	}
	// The feed is in id order: once a later message arrived, a duplicate
	// of the keyed one would have too.
	end := appendOK(t, a, "", draft("c", "end"))[0]
	got = gotB.waitForLast(t, "node b", end)
	if texts(got) != "c:1 c:2 c:3 c:once c:end" {
		t.Fatalf("node b delivered %q", texts(got))
	}
}
