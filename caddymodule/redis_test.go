package caddymodule_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The tests of issue 7 (SPEC §7): real Caddy nodes, booted from
// testdata/redis.Caddyfile, share one real redis-server started here on a
// free port. Subscribers and publishers behave like the JS client and the
// PHP class: a subscriber resumes by cursor whenever its stream ends, a
// publisher retries with its Idempotency-Key. Then every subscriber must
// have every message of its channels exactly once, in id order.

// redisWait bounds every wait for one thing the nodes do on their own (a
// delivery, a refusal, a recovery). When things work they take
// milliseconds to a few seconds; a failing test says what it waited for.
const redisWait = 20 * time.Second

// ---- redis-server ----

// redisNodeBin is where Debian's redis-server package installs the server.
// These tests need the real thing and fail, never skip, without it: CI
// installs it, and a store never run against Redis must not look green.
const redisNodeBin = "/usr/bin/redis-server"

// redisNode is a redis-server process owned by one test: on a free
// loopback port, persistence off (SHUTDOWN SAVE still writes its data
// directory, so a restart on the same port comes back with the data),
// killed in t.Cleanup.
type redisNode struct {
	t    testing.TB
	bin  string
	port string
	dir  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	output []string // the last lines the server wrote, for failure messages
}

func startRedisServer(t testing.TB) *redisNode {
	t.Helper()
	bin := redisNodeBin
	if _, err := os.Stat(bin); err != nil {
		path, lookErr := exec.LookPath("redis-server")
		if lookErr != nil {
			t.Fatalf("redis-server is not installed (%v; not in PATH either): the Redis store tests need a real Redis; install it with `apt-get install redis-server`", err)
		}
		bin = path
	}
	n := &redisNode{t: t, bin: bin, port: freePort(t), dir: t.TempDir()}
	t.Cleanup(n.kill)
	n.start()
	return n
}

func (n *redisNode) addr() string { return "127.0.0.1:" + n.port }

// start runs the server and waits until it says it accepts connections.
func (n *redisNode) start() {
	n.t.Helper()
	cmd := exec.Command(n.bin,
		"--port", n.port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--dir", n.dir, "--dbfilename", "dump.rdb",
		"--daemonize", "no", "--logfile", "",
		// What the store needs in production (README): no eviction.
		"--maxmemory-policy", "noeviction")
	out, err := cmd.StdoutPipe()
	if err != nil {
		n.t.Fatalf("redis-server: %v", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("start redis-server: %v", err)
	}
	ready, exited := make(chan struct{}), make(chan struct{})
	n.mu.Lock()
	n.cmd, n.exited, n.output = cmd, exited, nil
	n.mu.Unlock()
	// Drain the output until the process ends (a full pipe would block
	// the server), then reap it.
	go func() {
		defer close(exited)
		lines := bufio.NewScanner(out)
		signalled := false
		for lines.Scan() {
			n.mu.Lock()
			n.output = append(n.output, lines.Text())
			if len(n.output) > 40 {
				n.output = n.output[1:]
			}
			n.mu.Unlock()
			if !signalled && strings.Contains(lines.Text(), "Ready to accept connections") {
				signalled = true
				close(ready)
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case <-ready:
	case <-exited:
		n.t.Fatalf("redis-server exited at start:\n%s", n.lastOutput())
	case <-time.After(redisWait):
		n.t.Fatalf("redis-server not ready after %v:\n%s", redisWait, n.lastOutput())
	}
}

func (n *redisNode) lastOutput() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.output, "\n")
}

func (n *redisNode) process() (*os.Process, chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd.Process, n.exited
}

// kill ends the server at once; a frozen one is thawed by SIGKILL too.
func (n *redisNode) kill() {
	p, exited := n.process()
	select {
	case <-exited:
		return
	default:
	}
	_ = p.Kill()
	select {
	case <-exited:
	case <-time.After(redisWait):
		n.t.Errorf("redis-server did not exit after SIGKILL")
	}
}

// freeze and thaw stop the process with SIGSTOP and let it go on with
// SIGCONT: Redis is there, its connections stay open, and nothing answers,
// as on a hung host.
func (n *redisNode) freeze() { n.signal(syscall.SIGSTOP) }
func (n *redisNode) thaw()   { n.signal(syscall.SIGCONT) }

func (n *redisNode) signal(sig syscall.Signal) {
	n.t.Helper()
	p, _ := n.process()
	if err := p.Signal(sig); err != nil {
		n.t.Fatalf("%v redis-server: %v", sig, err)
	}
}

// shutdownSave stops the server the proper way, writing its data first,
// and waits for the process to end: connections drop and are refused until
// start brings it back on the same port.
func (n *redisNode) shutdownSave() {
	n.t.Helper()
	// The server closes the connection instead of answering.
	_ = n.do("SHUTDOWN", "SAVE")
	_, exited := n.process()
	select {
	case <-exited:
	case <-time.After(redisWait):
		n.t.Fatalf("redis-server did not exit after SHUTDOWN SAVE:\n%s", n.lastOutput())
	}
}

// do sends one command on a connection of its own.
func (n *redisNode) do(args ...any) error {
	c := goredis.NewClient(&goredis.Options{Addr: n.addr(), MaxRetries: -1})
	defer c.Close()
	return c.Do(context.Background(), args...).Err()
}

// ---- Caddy nodes, publishers, subscribers ----

// startRedisNodes starts a redis-server and n Caddy nodes on it, each from
// testdata/redis.Caddyfile with its own ports. Cleanups run in reverse, so
// the nodes stop before Redis does.
func startRedisNodes(t *testing.T, n int) (*redisNode, []*caddyServer) {
	t.Helper()
	r := startRedisServer(t)
	nodes := make([]*caddyServer, n)
	for i := range nodes {
		nodes[i] = startCaddy(t, "redis.Caddyfile", "REDIS_PORT="+r.port)
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

// ---- the tests ----

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
	// Subscriber counts in channel info are each node's own (README).
	t.Logf("hub.a subscribers per channel info: %d on node A, %d on node B (3 on each)",
		redisInfo(t, a, "hub.a").Subscribers, redisInfo(t, b, "hub.a").Subscribers)

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
		down, up func(*redisNode)
	}{
		{"frozen", (*redisNode).freeze, (*redisNode).thaw},
		{"restarted", (*redisNode).shutdownSave, (*redisNode).start},
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

	if err := r.do("FLUSHALL"); err != nil {
		t.Fatalf("FLUSHALL: %v", err)
	}
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
