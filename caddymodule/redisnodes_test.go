package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cometbox/cometbox/caddymodule/internal/redistest"
)

// The cast of the Redis tests in redis_test.go: Caddy nodes on one
// redis-server, and clients that behave like the real ones, so that what
// the tests check is what an application would see. Publishers retry like
// the PHP class, followers resume like the JS client, and the checks hold
// what they received to SPEC §3.

// redisWait bounds every wait for one thing the nodes do on their own (a
// delivery, a refusal, a recovery). When things work they take
// milliseconds to a few seconds; a failing test says what it waited for.
const redisWait = 20 * time.Second

// startRedisNodes starts a redis-server and n Caddy nodes on it, each from
// testdata/redis.Caddyfile with its own ports. Cleanups run in reverse, so
// the nodes stop before Redis does.
func startRedisNodes(t *testing.T, n int) (*redistest.Server, []*caddyServer) {
	t.Helper()
	// What the store needs in production (README): no eviction.
	r := redistest.Start(t, "--maxmemory-policy", "noeviction")
	port := strconv.Itoa(r.Port())
	nodes := make([]*caddyServer, n)
	for i := range nodes {
		nodes[i] = startCaddy(t, "redis.Caddyfile", "REDIS_PORT="+port)
	}
	return r, nodes
}

// redisHTTPClient is the tests' own client: publishers keep a connection
// per request in flight, which the default client (two idle connections
// per host) would not, and a test run would churn through ports.
func redisHTTPClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// redisHead is the hub's head as a node reports it: the cursor that means
// "everything published from now on".
func redisHead(t *testing.T, base, channel string) string {
	t.Helper()
	r := do(t, "GET", base+"/comet/sub/"+channel+"?wait=0", nil)
	if r.status != http.StatusOK {
		t.Fatalf("head from %s: %d %s", base, r.status, r.body)
	}
	return decodeLongPoll(t, r.body).LastID
}

// redisID splits an id into its epoch and seq (SPEC §3).
func redisID(id string) (epoch string, seq uint64, ok bool) {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(id[i+1:], 10, 64)
	return id[:i], seq, err == nil
}

// redisPublisher publishes like the PHP class behind a load balancer: each
// message has its own Idempotency-Key; a node that cannot be reached is
// replaced by the next one in the list, a 503 is retried after a pause, and
// both retries carry the same key, so that nothing is stored twice.
type redisPublisher struct {
	client *http.Client

	mu        sync.Mutex
	ids       map[string][]string // channel -> ids answered
	refusals  map[string]int      // node -> 503 answers
	failovers int                 // attempts that went to the next node
}

func newRedisPublisher(client *http.Client) *redisPublisher {
	return &redisPublisher{client: client, ids: make(map[string][]string), refusals: make(map[string]int)}
}

// attempt makes one publish request.
func (p *redisPublisher) attempt(ctx context.Context, base, channel, text, key string) (response, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/comet/pub/"+channel, strings.NewReader(text))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Idempotency-Key", key)
	resp, err := p.client.Do(req)
	if err != nil {
		return response{}, err
	}
	body, err := readAll(resp)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// publish stores text on channel through the first of nodes that takes it
// and answers its id.
func (p *redisPublisher) publish(ctx context.Context, nodes []string, channel, text, key string) (string, error) {
	node, pause := 0, 10*time.Millisecond
	for tries := 1; ; tries++ {
		if ctx.Err() != nil {
			return "", fmt.Errorf("publish %s to %s: gave up after %d tries: %w", key, channel, tries-1, ctx.Err())
		}
		r, err := p.attempt(ctx, nodes[node], channel, text, key)
		switch {
		case err != nil:
			// Unreachable: the load balancer's next node, same key.
			p.mu.Lock()
			p.failovers++
			p.mu.Unlock()
			node = (node + 1) % len(nodes)
			if node == 0 {
				redisPause(ctx, &pause)
			}
		case r.status == http.StatusCreated || r.status == http.StatusAccepted:
			id, err := p.record(channel, r)
			if err != nil {
				return "", fmt.Errorf("publish %s: %w", key, err)
			}
			return id, nil
		case r.status == http.StatusServiceUnavailable:
			if err := redisRefusal(r); err != nil {
				return "", fmt.Errorf("publish %s to %s: %w", key, channel, err)
			}
			p.mu.Lock()
			p.refusals[nodes[node]]++
			p.mu.Unlock()
			redisPause(ctx, &pause)
		default:
			return "", fmt.Errorf("publish %s to %s via %s: %d %s", key, channel, nodes[node], r.status, r.body)
		}
	}
}

// record notes the id a publish was answered.
func (p *redisPublisher) record(channel string, r response) (string, error) {
	var answer struct{ ID, Channel string }
	if err := json.Unmarshal([]byte(r.body), &answer); err != nil || answer.ID == "" || answer.Channel != channel {
		return "", fmt.Errorf("publish to %s: answer %d %q", channel, r.status, r.body)
	}
	p.mu.Lock()
	p.ids[channel] = append(p.ids[channel], answer.ID)
	p.mu.Unlock()
	return answer.ID, nil
}

// published is every id answered, per channel, in id order.
func (p *redisPublisher) published() map[string][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string][]string, len(p.ids))
	for ch, ids := range p.ids {
		ids = slices.Clone(ids)
		slices.SortFunc(ids, func(a, b string) int {
			_, x, _ := redisID(a)
			_, y, _ := redisID(b)
			return int(x) - int(y)
		})
		out[ch] = ids
	}
	return out
}

// redisRefusal checks that a 503 says why, in JSON (README "Decisions"), so
// that the PHP class can report it and retry.
func redisRefusal(r response) error {
	var body struct{ Error string }
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.Error == "" {
		return fmt.Errorf("503 without a JSON error body: %q", r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("503 answered as %q, want application/json: %q", ct, r.body)
	}
	return nil
}

// redisPause waits out a retry pause (full backoff, as clients do; not a
// synchronization) and doubles it up to half a second.
func redisPause(ctx context.Context, pause *time.Duration) {
	t := time.NewTimer(*pause)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	*pause = min(2**pause, 500*time.Millisecond)
}

// redisFollower is an SSE subscriber that never gives up, like the JS
// client: whenever its stream ends it reconnects with Last-Event-ID, to the
// next node in its list when the current one cannot be reached, until it
// has the "end" message of each of its channels.
type redisFollower struct {
	name     string
	channels []string
	nodes    []string
	client   *http.Client
	cursor   string

	connected     chan struct{} // closed when the first stream is open
	connectedOnce sync.Once
	first         chan struct{} // closed when the first message came
	firstOnce     sync.Once

	// Read only after run returned.
	got     []envelope
	resets  []string // channels of comet.reset notices
	notices []string // data of comet.reconnect notices
	streams []string // node of every stream opened, in order
	err     error
}

func newRedisFollower(client *http.Client, channels []string, cursor string, nodes ...string) *redisFollower {
	return &redisFollower{
		name:      strings.Join(channels, ",") + "@" + nodes[0],
		channels:  channels,
		nodes:     nodes,
		client:    client,
		cursor:    cursor,
		connected: make(chan struct{}),
		first:     make(chan struct{}),
	}
}

func (f *redisFollower) run(ctx context.Context) {
	ends := make(map[string]bool)
	node, pause := 0, 10*time.Millisecond
	for len(ends) < len(f.channels) {
		if ctx.Err() != nil {
			f.err = fmt.Errorf("%s: gave up with %d messages after %d streams (ends seen: %v): %w", f.name, len(f.got), len(f.streams), ends, ctx.Err())
			return
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", f.nodes[node]+"/comet/sub/"+strings.Join(f.channels, ","), nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Last-Event-ID", f.cursor)
		resp, err := f.client.Do(req)
		if err == nil && resp.StatusCode != http.StatusOK {
			// 503 while Redis is away: try again later, same node.
			body, _ := readAll(resp)
			if resp.StatusCode != http.StatusServiceUnavailable {
				f.err = fmt.Errorf("%s: subscribe: %d %s", f.name, resp.StatusCode, body)
				return
			}
			redisPause(ctx, &pause)
			continue
		}
		if err != nil {
			node = (node + 1) % len(f.nodes)
			redisPause(ctx, &pause)
			continue
		}
		f.streams = append(f.streams, f.nodes[node])
		f.connectedOnce.Do(func() { close(f.connected) })
		pause = 10 * time.Millisecond
		if err := f.read(resp.Body, ends); err != nil {
			resp.Body.Close()
			f.err = fmt.Errorf("%s: %w", f.name, err)
			return
		}
		resp.Body.Close()
	}
}

// read takes events from one stream until it ends or every "end" came.
func (f *redisFollower) read(body io.Reader, ends map[string]bool) error {
	events := newSSEReader(body)
	for len(ends) < len(f.channels) {
		ev, err := events.next()
		if err != nil {
			return nil // the stream ended: resume by cursor
		}
		var e envelope
		if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
			return fmt.Errorf("event %q: %w", ev.data, err)
		}
		switch {
		case e.Event == "comet.reset":
			f.resets = append(f.resets, e.Channel)
		case e.Event == "comet.reconnect":
			f.notices = append(f.notices, ev.data)
		case e.ID == "":
			return fmt.Errorf("unexpected notice %s", ev.data)
		default:
			if ev.id != e.ID {
				return fmt.Errorf("SSE id %q for envelope %s", ev.id, ev.data)
			}
			f.got = append(f.got, e)
			f.firstOnce.Do(func() { close(f.first) })
			f.cursor = e.ID
			if string(e.Data) == `"end"` {
				ends[e.Channel] = true
			}
		}
	}
	return nil
}

// redisFollowAll runs every follower and waits until each has its first stream.
// The returned function waits until they are done.
func redisFollowAll(t *testing.T, ctx context.Context, followers []*redisFollower) (wait func()) {
	t.Helper()
	var wg sync.WaitGroup
	for _, f := range followers {
		wg.Go(func() { f.run(ctx) })
	}
	// Stop them if the test ends early; wg.Wait is then quick.
	t.Cleanup(wg.Wait)
	deadline := time.After(redisWait)
	for _, f := range followers {
		select {
		case <-f.connected:
		case <-deadline:
			t.Fatalf("%s: no stream after %v", f.name, redisWait)
		}
	}
	return func() {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			<-done // each follower notices ctx and records why it stopped
		}
	}
}

// redisCheckDelivered holds a follower to SPEC §3: every message published on
// its channels exactly once, in id order (one cursor covers every channel
// of a multiplexed subscription), and no reset, since nothing was lost.
func redisCheckDelivered(t *testing.T, f *redisFollower, published map[string][]string) {
	t.Helper()
	if f.err != nil {
		t.Error(f.err)
		return
	}
	if len(f.resets) > 0 {
		t.Errorf("%s: comet.reset for %v; nothing was lost", f.name, f.resets)
	}
	perChannel := make(map[string][]string)
	var lastEpoch string
	var lastSeq uint64
	for i, e := range f.got {
		epoch, seq, ok := redisID(e.ID)
		switch {
		case !ok:
			t.Errorf("%s: malformed id %q", f.name, e.ID)
		case i > 0 && (epoch != lastEpoch || seq <= lastSeq):
			t.Errorf("%s: %s after %s-%d: not in id order (or delivered twice)", f.name, e.ID, lastEpoch, lastSeq)
		}
		lastEpoch, lastSeq = epoch, seq
		perChannel[e.Channel] = append(perChannel[e.Channel], e.ID)
	}
	for _, ch := range f.channels {
		got, want := perChannel[ch], published[ch]
		if !slices.Equal(got, want) {
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			t.Errorf("%s: channel %s: got %d messages, want %d; first difference at #%d", f.name, ch, len(got), len(want), i)
		}
		delete(perChannel, ch)
	}
	for ch, ids := range perChannel {
		t.Errorf("%s: %d messages of channel %s it does not hold", f.name, len(ids), ch)
	}
}

// redisChannelInfo is GET {prefix}/pub/{channel} (SPEC §5).
type redisChannelInfo struct {
	Channel     string `json:"channel"`
	Subscribers int    `json:"subscribers"`
	Messages    int    `json:"messages"`
	LastID      string `json:"last_id"`
}

func redisInfo(t *testing.T, base, channel string) redisChannelInfo {
	t.Helper()
	r := do(t, "GET", base+"/comet/pub/"+channel, nil)
	if r.status != http.StatusOK {
		t.Fatalf("channel info %s from %s: %d %s", channel, base, r.status, r.body)
	}
	var info redisChannelInfo
	jsonUnmarshal(t, []byte(r.body), &info)
	return info
}

// redisPublishAll publishes total messages with a few concurrent publishers;
// route chooses each message's channel and nodes. It stops at the first
// failure and reports it.
func redisPublishAll(t *testing.T, ctx context.Context, pub *redisPublisher, prefix string, total, publishers int, route func(i int) (channel string, nodes []string), progress func(i int)) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan int)
	errs := make(chan error, publishers)
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for i := range work {
				ch, nodes := route(i)
				if _, err := pub.publish(ctx, nodes, ch, fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("%s-%d", prefix, i)); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		})
	}
feed:
	for i := range total {
		if progress != nil {
			progress(i)
		}
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("publishing %s: %v", prefix, ctx.Err())
	}
}

// redisPublishEnds publishes the "end" message of each channel, after
// everything else, so that followers know when they have it all.
func redisPublishEnds(t *testing.T, ctx context.Context, pub *redisPublisher, prefix string, channels []string, nodes ...string) {
	t.Helper()
	for _, ch := range channels {
		if _, err := pub.publish(ctx, nodes, ch, "end", prefix+"-end-"+ch); err != nil {
			t.Fatal(err)
		}
	}
}

// redisWantOn is the ids of the given channels, merged in id order.
func redisWantOn(ids map[string][]string, channels []string) []string {
	var out []string
	for _, ch := range channels {
		out = append(out, ids[ch]...)
	}
	slices.SortFunc(out, func(a, b string) int {
		_, x, _ := redisID(a)
		_, y, _ := redisID(b)
		return int(x) - int(y)
	})
	return out
}

// redisSSE is one SSE stream read step by step, each step bounded.
type redisSSE struct {
	name   string
	events chan sseEvent // closed when the stream ends
}

func openRedisSSE(t *testing.T, ctx context.Context, client *http.Client, base string, channels []string, cursor string) *redisSSE {
	t.Helper()
	s := &redisSSE{name: strings.Join(channels, ",") + "@" + base, events: make(chan sseEvent, 64)}
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/comet/sub/"+strings.Join(channels, ","), nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", cursor)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := readAll(resp)
		t.Fatalf("%s: %d %s", s.name, resp.StatusCode, body)
	}
	done := make(chan struct{})
	t.Cleanup(func() { resp.Body.Close(); <-done })
	go func() {
		defer close(done)
		defer close(s.events)
		events := newSSEReader(resp.Body)
		for {
			ev, err := events.next()
			if err != nil {
				return
			}
			select {
			case s.events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return s
}

// next is the stream's next event, within redisWait.
func (s *redisSSE) next(t *testing.T, what string) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatalf("%s: the stream ended while waiting for %s", s.name, what)
		}
		return ev
	case <-time.After(redisWait):
		t.Fatalf("%s: no %s after %v", s.name, what, redisWait)
	}
	return sseEvent{}
}

// messages reads the messages with the given ids, in that order, and
// nothing else.
func (s *redisSSE) messages(t *testing.T, want []string) []string {
	t.Helper()
	var got []string
	for len(got) < len(want) {
		ev := s.next(t, fmt.Sprintf("message %d of %v", len(got)+1, want))
		if ev.id == "" {
			t.Fatalf("%s: %s %q while waiting for %v", s.name, ev.event, ev.data, want)
		}
		got = append(got, ev.id)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %v, want %v", s.name, got, want)
	}
	return got
}

// ends waits until the server ends the stream.
func (s *redisSSE) ends(t *testing.T) {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if ok {
			t.Fatalf("%s: %s %q after the reconnect notice, want the end of the stream", s.name, ev.event, ev.data)
		}
	case <-time.After(redisWait):
		t.Fatalf("%s: the stream still open %v after the reconnect notice", s.name, redisWait)
	}
}
