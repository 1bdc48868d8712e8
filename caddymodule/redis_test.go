package caddymodule_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cometbox/cometbox/caddymodule/internal/redistest"
)

// The tests of issue 7 (SPEC §7): real Caddy nodes, booted from
// testdata/redis.Caddyfile, share one real redis-server (redistest) on a
// free port. Subscribers and publishers behave like the JS client and the
// PHP class: a subscriber resumes by cursor whenever its stream ends, a
// publisher retries with its Idempotency-Key. Then every subscriber must
// have every message of its channels exactly once, in id order.

// TestTwoNodesActAsOneHub publishes 10,000 messages alternately through two
// Caddy nodes on one Redis, with four concurrent publishers, to SSE
// subscribers on both nodes, some holding both channels on one connection:
// each gets every message of its channels exactly once, in id order, and
// channel info is the same on either node.
func TestTwoNodesActAsOneHub(t *testing.T) {
	_, nodes := startRedisNodes(t, 2)
	a, b := nodes[0].baseURL, nodes[1].baseURL
	channels := []string{"hub.a", "hub.b"}
	client := redisHTTPClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	head := redisHead(t, a, channels[0])
	var followers []*redisFollower
	for _, node := range []string{a, b} {
		for _, held := range [][]string{{"hub.a"}, {"hub.b"}, channels, channels} {
			followers = append(followers, newRedisFollower(client, held, head, node))
		}
	}
	wait := redisFollowAll(t, ctx, followers)
	// Channel info counts every node's subscribers: 3 of hub.a on each.
	// Nodes report their counts every 5 s, so this waits for the reports.
	for _, node := range []string{a, b} {
		deadline := time.Now().Add(15 * time.Second)
		for redisInfo(t, node, "hub.a").Subscribers != 6 {
			if time.Now().After(deadline) {
				t.Fatalf("channel info on %s counts %d subscribers of hub.a, want 6 (3 per node)", node, redisInfo(t, node, "hub.a").Subscribers)
			}
			time.Sleep(100 * time.Millisecond) // polling another process's report
		}
	}

	const total = 10_000
	pub := newRedisPublisher(client)
	redisPublishAll(t, ctx, pub, "hub", total, 4, func(i int) (string, []string) {
		// Nodes alternate message by message, channels two by two, so
		// both channels are published through both nodes.
		return channels[(i/2)%2], []string{nodes[i%2].baseURL}
	}, nil)
	redisPublishEnds(t, ctx, pub, "hub", channels, a)
	wait()

	published := pub.published()
	if n := len(published["hub.a"]) + len(published["hub.b"]); n != total+2 {
		t.Fatalf("%d publishes answered, want %d", n, total+2)
	}
	reconnects, deliveries := 0, 0
	for _, f := range followers {
		redisCheckDelivered(t, f, published)
		reconnects += len(f.streams) - 1
		deliveries += len(f.got)
	}
	t.Logf("%d subscribers, %d deliveries, %d reconnects (slow consumers resume by cursor)", len(followers), deliveries, reconnects)

	for _, ch := range channels {
		infoA, infoB := redisInfo(t, a, ch), redisInfo(t, b, ch)
		want := published[ch]
		if infoA.LastID != want[len(want)-1] || infoB.LastID != infoA.LastID {
			t.Errorf("%s: last_id %q on node A, %q on node B; want %q on both", ch, infoA.LastID, infoB.LastID, want[len(want)-1])
		}
		if infoA.Messages != len(want) || infoB.Messages != infoA.Messages {
			t.Errorf("%s: %d messages on node A, %d on node B; want %d on both", ch, infoA.Messages, infoB.Messages, len(want))
		}
	}
}

// TestKilledNodeSubscribersResumeOnTheOther kills node A (SIGKILL: no
// goodbye notice) halfway through a run. Its SSE subscribers reconnect to
// node B with their cursor and miss nothing, with no duplicate, while the
// publishers go on through node B; a publish in flight on A when it died
// is retried on B with the same Idempotency-Key and stored once.
func TestKilledNodeSubscribersResumeOnTheOther(t *testing.T) {
	_, nodes := startRedisNodes(t, 2)
	a, b := nodes[0].baseURL, nodes[1].baseURL
	channels := []string{"kill.a", "kill.b"}
	client := redisHTTPClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	head := redisHead(t, a, channels[0])
	var onA []*redisFollower
	for _, held := range [][]string{{"kill.a"}, {"kill.b"}, channels, channels} {
		onA = append(onA, newRedisFollower(client, held, head, a, b))
	}
	onB := newRedisFollower(client, channels, head, b)
	wait := redisFollowAll(t, ctx, append(slices.Clone(onA), onB))

	const total = 2000
	var killed atomic.Bool
	killDone := make(chan struct{})
	pub := newRedisPublisher(client)
	redisPublishAll(t, ctx, pub, "kill", total, 2, func(i int) (string, []string) {
		if i%2 == 0 && !killed.Load() {
			return channels[(i/2)%2], []string{a, b}
		}
		return channels[(i/2)%2], []string{b, a}
	}, func(i int) {
		if i != total/2 {
			return
		}
		// Mid-run: every subscriber on A has had messages, more are on
		// their way, and publishing goes on while A dies, so that a
		// publish to A may be cut short and retried on B.
		for _, f := range onA {
			select {
			case <-f.first:
			case <-ctx.Done():
				t.Fatalf("%s: no message before the kill", f.name)
			}
		}
		go func() {
			defer close(killDone)
			if err := nodes[0].cmd.Process.Kill(); err != nil {
				t.Errorf("kill node A: %v", err)
			}
			_ = nodes[0].cmd.Wait()
			killed.Store(true)
		}()
	})
	select {
	case <-killDone:
	case <-ctx.Done():
		t.Fatal("node A was not killed")
	}
	redisPublishEnds(t, ctx, pub, "kill", channels, b)
	wait()

	published := pub.published()
	for _, f := range append(onA, onB) {
		redisCheckDelivered(t, f, published)
	}
	for _, f := range onA {
		if len(f.streams) < 2 || f.streams[len(f.streams)-1] != b {
			t.Errorf("%s: streams %v; want it to end up on node B (%s)", f.name, f.streams, b)
		}
	}
	if len(onB.streams) != 1 {
		t.Errorf("%s: node B's subscriber reconnected (streams %v); killing A should not touch it", onB.name, onB.streams)
	}
	t.Logf("publisher failovers from the killed node: %d", pub.failovers)
}

// TestRedisOutageAnswers503AndLosesNothing takes Redis away mid-run, frozen
// (SIGSTOP: connections hang) or shut down and restarted on the same port
// with its data. Publishes meanwhile are refused with 503 and a JSON
// reason; once Redis is back both nodes take publishes again by
// themselves, logging the outage once and the recovery once; subscribers
// stay connected and get everything published before and after, once. The
// refused publishes are retried with their Idempotency-Key, as the PHP class
// does: a refusal after a timeout may have been stored all the same (the
// frozen Redis runs the command when it wakes up), and the retry must then
// answer that message instead of storing a second one.
func TestRedisOutageAnswers503AndLosesNothing(t *testing.T) {
	cases := []struct {
		name     string
		down, up func(*redistest.Server)
	}{
		{"frozen", (*redistest.Server).Freeze, (*redistest.Server).Thaw},
		{"restarted", (*redistest.Server).ShutdownSave, (*redistest.Server).Start},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, nodes := startRedisNodes(t, 2)
			a, b := nodes[0].baseURL, nodes[1].baseURL
			channels := []string{"down.a", "down.b"}
			client := redisHTTPClient(t)
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()

			head := redisHead(t, a, channels[0])
			var followers []*redisFollower
			for _, node := range []string{a, b} {
				for _, held := range [][]string{{"down.a"}, channels} {
					followers = append(followers, newRedisFollower(client, held, head, node))
				}
			}
			wait := redisFollowAll(t, ctx, followers)
			pub := newRedisPublisher(client)
			route := func(i int) (string, []string) { return channels[(i/2)%2], []string{nodes[i%2].baseURL} }
			redisPublishAll(t, ctx, pub, "before", 200, 2, route, nil)

			tc.down(r)
			// Each node gets one publish after another until it has
			// refused one and has noticed the outage itself (it logs it):
			// the first refusal may come from a command's timeout, later
			// ones come at once. Every refused publish is retried below.
			type refusal struct{ channel, key string }
			refused := make([][]refusal, len(nodes))
			var wg sync.WaitGroup
			for n, node := range nodes {
				wg.Go(func() {
					pause := 10 * time.Millisecond
					for k := 0; ; k++ {
						if ctx.Err() != nil {
							t.Errorf("node %d: %d publishes refused, outage logged: %v; gave up waiting: %v", n, len(refused[n]), strings.Contains(node.logs.String(), "redis unavailable"), ctx.Err())
							return
						}
						ch, key := channels[k%2], fmt.Sprintf("outage-%d-%d", n, k)
						res, err := pub.attempt(ctx, node.baseURL, ch, key, key)
						switch {
						case err != nil:
							t.Errorf("node %d during the outage: %v", n, err)
							return
						case res.status == http.StatusServiceUnavailable:
							if err := redisRefusal(res); err != nil {
								t.Errorf("node %d: %v", n, err)
								return
							}
							refused[n] = append(refused[n], refusal{ch, key})
						case res.status == http.StatusCreated || res.status == http.StatusAccepted:
							// Taken before Redis was gone.
							if _, err := pub.record(ch, res); err != nil {
								t.Error(err)
								return
							}
						default:
							t.Errorf("node %d during the outage: %d %s", n, res.status, res.body)
							return
						}
						if len(refused[n]) > 0 && strings.Contains(node.logs.String(), "redis unavailable") {
							return
						}
						redisPause(ctx, &pause)
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			tc.up(r)

			// The refused publishes, retried with their keys until each
			// node takes them: the nodes recovered by themselves. A
			// refusal after a timeout may have been stored when the frozen
			// Redis woke up: its retry answers that message's id.
			recovery := time.Now()
			for n, keys := range refused {
				for _, rf := range keys {
					rctx, rcancel := context.WithTimeout(ctx, redisWait)
					_, err := pub.publish(rctx, []string{nodes[n].baseURL}, rf.channel, rf.key, rf.key)
					rcancel()
					if err != nil {
						t.Fatalf("node %d did not take publishes again within %v after Redis came back: %v", n, redisWait, err)
					}
				}
			}
			t.Logf("refused during the outage: %d and %d publishes; both nodes took them %v after Redis came back", len(refused[0]), len(refused[1]), time.Since(recovery).Round(time.Millisecond))
			redisPublishAll(t, ctx, pub, "after", 200, 2, route, nil)
			redisPublishEnds(t, ctx, pub, "down", channels, a)
			wait()

			published := pub.published()
			for _, f := range followers {
				redisCheckDelivered(t, f, published)
				if len(f.streams) != 1 || len(f.notices) > 0 {
					t.Errorf("%s: %d streams, notices %q; want it to stay connected through the outage", f.name, len(f.streams), f.notices)
				}
			}
			for n, node := range nodes {
				logs := node.logs.String()
				if down, up := strings.Count(logs, "redis unavailable"), strings.Count(logs, "redis available again"); down != 1 || up != 1 {
					t.Errorf("node %d logged the outage %d times and the recovery %d times, want once each", n, down, up)
				}
			}
		})
	}
}

// TestFlushedRedisMakesSubscribersReset flushes Redis under connected
// subscribers on both nodes. Their history is gone, so each node ends its
// streams with comet.reconnect; a subscriber that comes back with its old
// cursor gets comet.reset for each of its channels first (its app reloads
// state), then what was published since the flush, then live messages, in
// the new epoch.
func TestFlushedRedisMakesSubscribersReset(t *testing.T) {
	r, nodes := startRedisNodes(t, 2)
	a, b := nodes[0].baseURL, nodes[1].baseURL
	channels := []string{"flush.a", "flush.b"}
	client := redisHTTPClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	pub := newRedisPublisher(client)
	// publish sends count messages, channels and nodes alternating, and
	// answers their ids per channel.
	published := make(map[string][]string)
	publish := func(stage string, count int) map[string][]string {
		out := make(map[string][]string)
		for i := range count {
			ch := channels[i%2]
			key := fmt.Sprintf("flush-%s-%d", stage, i)
			id, err := pub.publish(ctx, []string{nodes[(i/2)%2].baseURL}, ch, key, key)
			if err != nil {
				t.Fatal(err)
			}
			out[ch] = append(out[ch], id)
			published[ch] = append(published[ch], id)
		}
		return out
	}

	head := redisHead(t, a, channels[0])
	type subscriber struct {
		node     string
		channels []string
		stream   *redisSSE
		last     string
	}
	subs := []*subscriber{
		{node: a, channels: []string{"flush.a"}},
		{node: a, channels: channels},
		{node: b, channels: []string{"flush.b"}},
		{node: b, channels: channels},
	}
	for _, s := range subs {
		s.stream = openRedisSSE(t, ctx, client, s.node, s.channels, head)
	}
	before := publish("before", 6)
	for _, s := range subs {
		got := s.stream.messages(t, redisWantOn(before, s.channels))
		s.last = got[len(got)-1]
	}
	oldEpoch, _, _ := redisID(subs[0].last)

	r.Do("FLUSHALL")
	for _, s := range subs {
		if ev := s.stream.next(t, "comet.reconnect after FLUSHALL"); ev.event != "comet.reconnect" {
			t.Fatalf("%s: after FLUSHALL got %s %q, want comet.reconnect", s.stream.name, ev.event, ev.data)
		}
		s.stream.ends(t)
	}

	flushed := publish("flushed", 4)
	for ch, ids := range flushed {
		if epoch, _, _ := redisID(ids[0]); epoch == oldEpoch {
			t.Fatalf("%s: %s published after FLUSHALL is still in epoch %s", ch, ids[0], oldEpoch)
		}
	}
	for _, s := range subs {
		s.stream = openRedisSSE(t, ctx, client, s.node, s.channels, s.last)
		var reset []string
		for range s.channels {
			ev := s.stream.next(t, "comet.reset")
			if ev.event != "comet.reset" {
				t.Fatalf("%s: resuming from %s got %s %q first, want comet.reset for each channel", s.stream.name, s.last, ev.event, ev.data)
			}
			reset = append(reset, decodeEnvelope(t, ev.data).Channel)
		}
		if slices.Sort(reset); !slices.Equal(reset, s.channels) {
			t.Errorf("%s: comet.reset for %v, want %v", s.stream.name, reset, s.channels)
		}
		s.stream.messages(t, redisWantOn(flushed, s.channels))
	}
	after := publish("after", 4)
	for _, s := range subs {
		s.stream.messages(t, redisWantOn(after, s.channels))
	}

	// The new epoch's history is consistent on both nodes too.
	for _, ch := range channels {
		infoA, infoB := redisInfo(t, a, ch), redisInfo(t, b, ch)
		want := append(flushed[ch], after[ch]...)
		// Subscriber counts are each node's own.
		if infoA.LastID != want[len(want)-1] || infoB.LastID != infoA.LastID || infoA.Messages != len(want) || infoB.Messages != infoA.Messages {
			t.Errorf("%s after FLUSHALL: info %+v on node A, %+v on node B; want last_id %s and %d messages", ch, infoA, infoB, want[len(want)-1], len(want))
		}
	}
}

// TestPublishCountsSubscribersOnOtherNodes subscribes on one node and
// publishes through the other: the answer is 201 with the subscriber
// counted, as a PHP app that checks whether anyone is listening expects,
// not a 202 "nobody" because nobody is on the node it happened to reach.
func TestPublishCountsSubscribersOnOtherNodes(t *testing.T) {
	_, nodes := startRedisNodes(t, 2)
	a, b := nodes[0].baseURL, nodes[1].baseURL
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream := openStream(t, ctx, b+"/comet/sub/elsewhere", "Accept", "text/event-stream")
	if !readUntil(t, bufio.NewReader(stream.Body), ": ok\n") {
		t.Fatal("subscribe on node B: stream ended before \": ok\"")
	}
	// Nodes report their subscribers every 5 s; node A's channel info
	// shows when B's report is in (404 until then: A knows nothing of it).
	deadline := time.Now().Add(15 * time.Second)
	for {
		if do(t, "GET", a+"/comet/pub/elsewhere", nil).status == http.StatusOK && redisInfo(t, a, "elsewhere").Subscribers == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node A never counted node B's subscriber")
		}
		time.Sleep(100 * time.Millisecond) // polling another process's report
	}
	r := do(t, "POST", a+"/comet/pub/elsewhere", strings.NewReader("hello"), "Content-Type", "text/plain")
	var answer struct {
		Subscribers int `json:"subscribers"`
	}
	jsonUnmarshal(t, []byte(r.body), &answer)
	if r.status != http.StatusCreated || answer.Subscribers != 1 {
		t.Fatalf("publish through node A: %d with %d subscribers, want 201 with the 1 on node B (%s)", r.status, answer.Subscribers, r.body)
	}
}
