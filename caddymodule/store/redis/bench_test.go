package redis

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/store"
	"github.com/cometbox/cometbox/caddymodule/store/memory"
)

// BenchmarkAppendDeliver measures publish-to-delivery latency through
// Redis, across nodes: messages are appended through one store and timed
// when another store's reader hands them over, as a hub on a second Caddy
// would get them. Each message carries its publish time. Reported: p50 and
// p99 latency in ns, and deliveries per second (all messages appended and
// delivered, divided by the time that took). The memory store runs the same
// workload on one node, as the baseline.
//
//	go test ./caddymodule/store/redis -run '^$' -bench AppendDeliver
func BenchmarkAppendDeliver(b *testing.B) {
	srv := startRedis(b)
	for _, publishers := range []int{1, 8} {
		b.Run(fmt.Sprintf("store=redis/publishers=%d", publishers), func(b *testing.B) {
			// A hub name per round: the stores of a finished round are
			// closed, and the next round's reader must not wade through
			// its messages.
			name := fmt.Sprintf("bench-%d-%d", publishers, b.N)
			pub, closePub := openBenchStore(b, srv, name)
			defer closePub()
			sub, closeSub := openBenchStore(b, srv, name)
			defer closeSub()
			benchAppendDeliver(b, pub, sub, publishers)
		})
		b.Run(fmt.Sprintf("store=memory/publishers=%d", publishers), func(b *testing.B) {
			st, err := memory.New(memory.Options{Retention: keep(100, time.Hour), NoSweeper: true})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			benchAppendDeliver(b, st, st, publishers)
		})
	}
}

// benchAppendDeliver appends b.N messages through pub from several
// goroutines and waits until sub delivered them all.
func benchAppendDeliver(b *testing.B, pub, sub store.Store, publishers int) {
	rec := newLatencies(b.N)
	sub.Listen(rec.deliver)

	pad := strings.Repeat("x", 80) // about 100-byte messages
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	b.ResetTimer()
	start := time.Now()
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				d := draft("bench", strconv.FormatInt(time.Now().UnixNano(), 10)+" "+pad)
				if _, _, err := pub.Append(context.Background(), []message.Draft{d}, ""); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("append: %v", err)
	}
	select {
	case <-rec.done:
	case <-time.After(eventWait):
		b.Fatalf("delivered %d of %d messages within %v", rec.count(), b.N, eventWait)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	ns := rec.sorted()
	b.ReportMetric(float64(ns[len(ns)/2]), "p50-ns")
	b.ReportMetric(float64(ns[len(ns)*99/100]), "p99-ns")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
}

func openBenchStore(b *testing.B, srv *redisServer, name string) (*Store, func()) {
	b.Helper()
	s, err := New(context.Background(), Options{URL: srv.url(), Name: name, NoSweeper: true})
	if err != nil {
		b.Fatal(err)
	}
	return s, func() {
		if err := s.Close(); err != nil {
			b.Errorf("close: %v", err)
		}
	}
}

// latencies is a DeliverFunc that times each message from the publish time
// it carries, and closes done once it has seen want of them.
type latencies struct {
	mu   sync.Mutex
	ns   []int64
	want int
	done chan struct{}
}

func newLatencies(want int) *latencies {
	return &latencies{ns: make([]int64, 0, want), want: want, done: make(chan struct{})}
}

func (l *latencies) deliver(msgs []*message.Message) {
	now := time.Now().UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range msgs {
		if m.IsNotice() {
			continue
		}
		sent, _, _ := bytes.Cut(m.Data, []byte(" "))
		at, err := strconv.ParseInt(string(sent), 10, 64)
		if err != nil {
			continue
		}
		l.ns = append(l.ns, now-at)
		if len(l.ns) == l.want {
			close(l.done)
		}
	}
}

func (l *latencies) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ns)
}

func (l *latencies) sorted() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(slices.Values(l.ns))
}
