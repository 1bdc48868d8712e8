package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/store"
)

// countingSink accepts every frame and only counts it: what is left of a
// delivery is the hub's own work.
type countingSink struct{ frames int }

func (s *countingSink) Start(replay []*message.Message) { s.frames += len(replay) }
func (s *countingSink) Send(*message.Message) bool      { s.frames++; return true }
func (s *countingSink) Close(error)                     {}

// BenchmarkFanout publishes one 100-byte message to 10,000 subscribers of a
// channel. The message is encoded once; ns/delivery and allocs/op (per
// publish) are what to watch: allocations must not grow with subscribers.
func BenchmarkFanout(b *testing.B) {
	const subscribers = 10_000
	data := make([]byte, 100)
	for i := range data {
		data[i] = 'a' + byte(i%26)
	}
	draft := []message.Draft{{Channel: "fan", Type: "text/plain", Data: data}}

	b.Run("sink=count", func(b *testing.B) {
		h, _ := newHub(b, 256, store.Retention{Count: 100, Age: time.Hour})
		sinks := make([]*countingSink, subscribers)
		for i := range sinks {
			sinks[i] = &countingSink{}
			if _, err := h.Subscribe(context.Background(), hub.SubscribeRequest{Channels: []string{"fan"}}, sinks[i]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, _, err := h.Publish(context.Background(), draft, ""); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subscribers), "ns/delivery")
	})

	b.Run("sink=queue", func(b *testing.B) {
		h, _ := newHub(b, 256, store.Retention{Count: 100, Age: time.Hour})
		queues := make([]*hub.Queue, subscribers)
		for i := range queues {
			queues[i] = hub.NewQueue(256, 0)
			if _, err := h.Subscribe(context.Background(), hub.SubscribeRequest{Channels: []string{"fan"}}, queues[i]); err != nil {
				b.Fatal(err)
			}
		}
		frames := make([]*message.Message, 0, 16)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, _, err := h.Publish(context.Background(), draft, ""); err != nil {
				b.Fatal(err)
			}
			for _, q := range queues { // what each subscriber's goroutine does
				frames, _ = q.Drain(frames[:0], 0)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subscribers), "ns/delivery")
	})
}
