package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// What every transport's subscriber shares: a connection spread over local
// source addresses, a reconnect loop that resumes by cursor where the
// target allows it, and the bookkeeping of who is connected.

// session is one connection of one subscriber over one transport: it
// connects, calls s.up() once the server holds the subscription, and reads
// until the connection ends. The error says why it ended.
type session func(ctx context.Context, s *subscriber) error

func sessionFor(transport string) session {
	switch transport {
	case transportSSE:
		return sseSession
	case transportStream:
		return streamSession
	case transportLongPoll:
		return longPollSession
	default:
		return wsSession
	}
}

// subEnv is what the subscribers of one process share.
type subEnv struct {
	target  *target
	url     *url.URL // the subscribe URL, before per-request parameters
	dialer  *dialer
	tracker *tracker
	session session
	bufSize int           // line buffer: fits the largest framed message
	sem     chan struct{} // bounds connects in flight (listen backlogs are finite)
	lpWait  int           // long-poll hold, in seconds
	poller  *poller       // reads held streams (SSE, NDJSON, WebSocket)

	pending   atomic.Int64  // subscribers not yet up once
	giveUp    chan struct{} // closed when connecting is over: who never came up stops trying
	allUp     chan struct{} // closed when pending reaches 0
	live      atomic.Int64  // connections up now
	reconnect atomic.Int64  // sessions after the first that came up
	errs      errorLog
}

func newSubEnv(t *target, channel string, d *dialer, tr *tracker, n, size, connectConcurrency int, pollDelay time.Duration) (*subEnv, error) {
	u, err := t.subscribeURL(channel)
	if err != nil {
		return nil, err
	}
	env := &subEnv{
		target:  t,
		url:     u,
		dialer:  d,
		tracker: tr,
		session: sessionFor(t.transport),
		bufSize: max(16<<10, 2*size+4096),
		sem:     make(chan struct{}, max(connectConcurrency, 1)),
		lpWait:  30,
		allUp:   make(chan struct{}),
		giveUp:  make(chan struct{}),
	}
	if t.transport != transportLongPoll && !goroutineReaders {
		if env.poller, err = newPoller(pollDelay); err != nil {
			return nil, err
		}
	}
	env.pending.Store(int64(n))
	if n == 0 {
		close(env.allUp)
	}
	return env, nil
}

// subscriber is one held subscription and its resume state.
type subscriber struct {
	env    *subEnv
	ledger *subLedger

	cursor []byte // last message id handled: SSE id:, envelope id
	// Nchan's long-poll cursor is a pair of response headers.
	lastModified, etag string

	upOnce   bool
	isUp     bool
	release  func() // gives back the connect slot; nil once given
	sessions int
}

func newSubscriber(env *subEnv) *subscriber {
	return &subscriber{env: env, ledger: env.tracker.newLedger()}
}

// run holds the subscription until ctx ends, reconnecting with a jittered
// backoff whenever a session ends.
func (s *subscriber) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		var once sync.Once
		s.env.sem <- struct{}{}
		s.release = func() { once.Do(func() { <-s.env.sem }) }
		s.sessions++
		err := s.env.session(ctx, s)
		s.release()
		if s.isUp {
			s.isUp = false
			s.env.live.Add(-1)
			backoff = 100 * time.Millisecond
		}
		if ctx.Err() != nil {
			return
		}
		s.env.errs.add(err)
		if !s.upOnce {
			select {
			case <-s.env.giveUp:
				return
			default:
			}
		}
		d := backoff/2 + rand.N(backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// up marks the subscription live: the server holds it.
func (s *subscriber) up() {
	if s.isUp {
		return
	}
	s.isUp = true
	s.release()
	s.env.live.Add(1)
	if !s.upOnce {
		s.upOnce = true
		if s.env.pending.Add(-1) == 0 {
			close(s.env.allUp)
		}
		return
	}
	s.env.reconnect.Add(1)
}

// dialer spreads connections over several local source addresses, so that
// tens of thousands of connections to one server port do not run out of
// ephemeral ports (each source address has its own ~28,000).
type dialer struct {
	sources []net.IP
	next    atomic.Uint64
	timeout time.Duration
}

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (linux/in.h, Linux 4.2):
// with it, binding a source address defers the port choice to connect(),
// which then needs only the 4-tuple to be unique instead of reserving the
// port for every destination.
const ipBindAddressNoPort = 24

func (d *dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout}
	if len(d.sources) > 0 {
		src := d.sources[d.next.Add(1)%uint64(len(d.sources))]
		nd.LocalAddr = &net.TCPAddr{IP: src}
		nd.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
			})
			return errors.Join(err, serr)
		}
	}
	return nd.DialContext(ctx, network, addr)
}

// parseSources reads "127.0.0.2-127.0.0.9" (a range in the last octet) or a
// comma list of addresses.
func parseSources(spec string) ([]net.IP, error) {
	if spec == "" {
		return nil, nil
	}
	var out []net.IP
	for _, part := range strings.Split(spec, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a := net.ParseIP(lo).To4()
		if a == nil {
			return nil, fmt.Errorf("source address %q is not IPv4", lo)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b := net.ParseIP(hi).To4()
		if b == nil || !a[:3:3].Equal(b[:3:3]) || b[3] < a[3] {
			return nil, fmt.Errorf("source range %q: give a range in the last octet, like 127.0.0.2-127.0.0.9", part)
		}
		for i := int(a[3]); i <= int(b[3]); i++ {
			out = append(out, net.IPv4(a[0], a[1], a[2], byte(i)).To4())
		}
	}
	return out, nil
}

// openHTTP connects and sends one GET for u over a fresh HTTP/1.1
// connection, returning the response with its headers read. Subscribers
// speak HTTP themselves rather than through net/http's client: one
// connection per subscriber, no pool, and a few small buffers, so the
// client stays cheaper than the server it measures.
func (s *subscriber) openHTTP(ctx context.Context, u *url.URL, hdr http.Header) (net.Conn, *bufio.Reader, *http.Response, error) {
	conn, err := s.env.dialer.dial(ctx, "tcp", hostPort(u))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("dial: %w", err)
	}
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := roundTrip(conn, br, u, hdr, time.Now().Add(15*time.Second))
	if err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	_ = conn.SetDeadline(time.Time{}) // a held stream may stay quiet for long
	return conn, br, resp, nil
}

// roundTrip writes a GET on conn and reads the response head before
// deadline, which stays set on conn. The body is left to the caller.
func roundTrip(conn net.Conn, br *bufio.Reader, u *url.URL, hdr http.Header, deadline time.Time) (*http.Response, error) {
	_ = conn.SetDeadline(deadline)
	var b strings.Builder
	b.WriteString("GET ")
	b.WriteString(u.RequestURI())
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(u.Host)
	b.WriteString("\r\nUser-Agent: cometbench\r\n")
	for k, vs := range hdr {
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\n")
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet, URL: u})
	if err != nil {
		return nil, fmt.Errorf("read response head: %w", err)
	}
	return resp, nil
}

// hold hands a streaming response to the env's poller and waits for the
// stream to end or ctx to.
func (s *subscriber) hold(ctx context.Context, conn net.Conn, br *bufio.Reader, d decoder) error {
	if s.env.poller == nil {
		return readHeld(ctx, conn, br, d, s.env.bufSize)
	}
	ended, stop, err := s.env.poller.hold(conn, br, d)
	if err != nil {
		conn.Close()
		return err
	}
	select {
	case err := <-ended:
		return err
	case <-ctx.Done():
		stop()
		return ctx.Err()
	}
}

// statusError is a response that is not what a subscriber waits for.
func statusError(resp *http.Response) error {
	return fmt.Errorf("subscribe: HTTP %s", resp.Status)
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" || u.Scheme == "wss" {
		return u.Host + ":443"
	}
	return u.Host + ":80"
}

// closeOnDone closes c when ctx ends, unblocking a pending read; the
// returned stop undoes it.
func closeOnDone(ctx context.Context, c interface{ Close() error }) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.Close() })
}

// errorLog keeps a count of errors by message and the first few distinct
// messages, for the report: ten thousand identical errors say one thing.
type errorLog struct {
	mu     sync.Mutex
	counts map[string]int
	order  []string
}

const errorLogDistinct = 8

// addrPattern matches "tcp 127.0.0.2:41344->127.0.0.1:7999": every
// connection has its own, and errors differing only there are one error.
var addrPattern = regexp.MustCompile(`(tcp) [0-9.:\[\]a-f]+->[0-9.:\[\]a-f]+`)

func (l *errorLog) add(err error) {
	if err == nil {
		return
	}
	msg := addrPattern.ReplaceAllString(err.Error(), "$1")
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = make(map[string]int)
	}
	if _, ok := l.counts[msg]; !ok {
		if len(l.order) >= errorLogDistinct {
			msg = "(other errors)"
			if _, ok := l.counts[msg]; !ok {
				l.order = append(l.order, msg)
			}
		} else {
			l.order = append(l.order, msg)
		}
	}
	l.counts[msg]++
}

// list renders the log as "N× message" lines.
func (l *errorLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.order))
	for _, m := range l.order {
		out = append(out, fmt.Sprintf("%d× %s", l.counts[m], m))
	}
	return out
}
