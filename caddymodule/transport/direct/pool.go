//go:build linux

// Package direct delivers to HTTP/1.1 subscribers without a goroutine per
// subscriber. The request is hijacked, the response head written by hand
// (close-delimited, so the body is exactly the frames), and the socket
// joins a pool where a few writer goroutines, one per core, write each
// message's shared pre-encoded buffers with send(2). A socket that would
// block keeps a bounded backlog and is woken by epoll when it drains; one
// that stays blocked is cut by the hub and resumes by cursor. One epoll
// goroutine notices hangups for all sockets.
package direct

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cometbox/cometbox/caddymodule/hub"
)

// Pool holds hijacked subscriber sockets and the goroutines that serve them
// all: one writer per core, one epoll watcher, one heartbeat ticker, and
// one waiter per handler generation for unload.
type Pool struct {
	shards []*shard
	poller *poller

	// tick counts heartbeat ticks: the coarse clock of heartbeats and
	// write timeouts, which a delivery reads instead of the time.
	tick atomic.Uint32

	mu sync.Mutex
	// conns are the connections held, by fd: the poller's events name
	// them by it.
	conns   map[int32]*conn
	gen     uint32 // numbers the connections taken
	unloads map[<-chan struct{}]unloadGroup
	closed  bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// unloadGroup is what one handler generation took, and how long its
// connections live on once it is unloaded.
type unloadGroup struct {
	closeDelay time.Duration
	conns      []*conn
}

// heartbeatTick is how often idle sockets are checked for a due heartbeat.
const heartbeatTick = time.Second

// New starts a pool.
func New() (*Pool, error) {
	p := &Pool{
		conns:   make(map[int32]*conn),
		unloads: make(map[<-chan struct{}]unloadGroup),
		stop:    make(chan struct{}),
	}
	poller, err := newPoller(p.lookup)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	p.poller = poller
	for range runtime.GOMAXPROCS(0) {
		s := &shard{wake: make(chan struct{}, 1)}
		p.shards = append(p.shards, s)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			s.run(p.stop)
		}()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.heartbeats()
	}()
	return p, nil
}

// Serve takes over an HTTP/1.1 request on a plain socket: it hijacks the
// connection, registers the subscription (before the head is written, so
// nothing published after the client sees it is missed), queues head,
// preamble and history, and returns; the request goroutine is free. It
// returns false, having touched nothing, when the request cannot be
// hijacked onto a raw socket (HTTP/2, HTTP/3, TLS): serve it in the
// handler then.
func (p *Pool) Serve(w http.ResponseWriter, r *http.Request, h *hub.Hub, req hub.SubscribeRequest, held Held, s *Stream) (bool, error) {
	if !CanTake(r) {
		return false, nil
	}
	c, taken := p.take(w, h, held, s, responseHead(w.Header(), s))
	if c == nil {
		return taken, nil
	}
	if len(s.Preamble) > 0 {
		c.appendRawLocked(s.Preamble) // not yet shared: no lock needed
	}
	if err := p.watch(c, held); err != nil {
		return true, nil
	}
	sub, err := h.Subscribe(r.Context(), req, c)
	if err != nil {
		c.mu.Lock()
		c.out = [][]byte{[]byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhub unavailable\n")}
		c.ending = err
		c.mu.Unlock()
		c.kick()
		return true, nil
	}
	c.mu.Lock()
	c.sub = sub
	closed := c.closed
	c.mu.Unlock()
	if closed {
		sub.Close() // the peer left while subscribing
	}
	c.kick()
	return true, nil
}

// take hijacks the request's connection for a held response that starts
// with head. It returns nil when the connection is not the pool's, with
// taken false if the request is untouched (serve it in the handler).
func (p *Pool) take(w http.ResponseWriter, h *hub.Hub, held Held, s *Stream, head []byte) (c *conn, taken bool) {
	socket, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, false
	}
	fd, err := ownSocket(socket)
	if err != nil {
		// A wrapped connection (a listener wrapper): answer a retry, the
		// client falls back or comes again.
		socket.Write([]byte("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
		socket.Close()
		return nil, true
	}
	c = &conn{
		pool:     p,
		hub:      h,
		fd:       fd,
		stream:   s,
		out:      [][]byte{head},
		pending:  len(head),
		waitTick: p.tick.Load(),
	}
	if held.TakeRelease != nil {
		c.release = held.TakeRelease()
	}
	return c, true
}

// watch lists a taken connection in the pool and under epoll, and sets
// the end of its grant. The connection is closed if that fails.
func (p *Pool) watch(c *conn, held Held) error {
	if !p.track(c, held) {
		c.close(hub.ErrHubClosed) // the pool is closing
		return hub.ErrHubClosed
	}
	if err := p.poller.add(c); err != nil {
		c.close(err)
		return err
	}
	if !held.Until.IsZero() {
		c.ExpireAt(held.Until)
	}
	return nil
}

// ExpireAt ends the connection when a grant expires (ErrExpired).
func (c *conn) ExpireAt(until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endByLocked(until, ErrExpired)
}

// headerValueBreaks removes line breaks from a header value: one would end
// the head early and let the rest be read as body or another header.
var headerValueBreaks = strings.NewReplacer("\r", "", "\n", "")

// responseHead writes the status line and headers of a held response. The
// body is close-delimited (RFC 9112 §6.3): no chunk framing, so every frame
// goes out as the same bytes to every subscriber.
func responseHead(header http.Header, s *Stream) []byte {
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\n")
	writeHeaderLines(&b, header)
	b.WriteString("Content-Type: " + s.ContentType + "\r\n")
	b.WriteString("Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n")
	for k, v := range s.ExtraHeaders {
		b.WriteString(k + ": " + v + "\r\n")
	}
	b.WriteString("Date: " + time.Now().UTC().Format(http.TimeFormat) + "\r\n")
	b.WriteString("Connection: close\r\n\r\n")
	return []byte(b.String())
}

// writeHeaderLines writes the headers set so far by the handler chain,
// sorted, but those about the message's framing, which the held response
// sets itself.
func writeHeaderLines(b *strings.Builder, header http.Header) {
	keys := make([]string, 0, len(header))
	for k := range header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Content-Type":
			continue
		}
		for _, v := range header[k] {
			b.WriteString(k + ": " + headerValueBreaks.Replace(v) + "\r\n")
		}
	}
}

// ownSocket takes the socket of a hijacked connection as a bare
// descriptor: it is duplicated (close-on-exec, still non-blocking: the flag
// belongs to the shared open file), and the net.Conn is closed, which
// closes only its own descriptor.
func ownSocket(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, errors.New("not a socket")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(orig uintptr) { fd, dupErr = unix.FcntlInt(orig, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, dupErr
	}
	c.Close()
	return fd, nil
}

// track lists a connection, and under its handler's unload signal.
func (p *Pool) track(c *conn, held Held) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.gen++
	c.gen = p.gen
	p.conns[int32(c.fd)] = c
	unload := held.Unload
	if unload == nil {
		return true
	}
	group, seen := p.unloads[unload]
	group.closeDelay = held.CloseDelay
	group.conns = append(group.conns, c)
	p.unloads[unload] = group
	if !seen {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			select {
			case <-unload:
				p.unload(unload)
			case <-p.stop:
			}
		}()
	}
	return true
}

// spawn runs fn on a goroutine the pool waits for when it closes; it
// reports false, running nothing, once the pool is closed.
func (p *Pool) spawn(fn func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1) // while open, the writers keep the count above zero
	go func() {
		defer p.wg.Done()
		fn()
	}()
	return true
}

// lookup finds the connection an epoll event is about: nil if it is
// gone, or if its fd number now belongs to a later one.
func (p *Pool) lookup(fd int32, gen uint32) *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.conns[fd]; c != nil && c.gen == gen {
		return c
	}
	return nil
}

// forget stops listing and watching a connection. It runs under the
// connection's lock, before its fd is closed: once closed, the number
// may be another connection's.
func (p *Pool) forget(c *conn) {
	p.mu.Lock()
	if p.conns[int32(c.fd)] == c {
		delete(p.conns, int32(c.fd))
	}
	p.mu.Unlock()
	p.poller.remove(c)
}

// unload ends the connections taken by an unloaded handler, each after the
// close delay plus a random jitter of up to the same again, so that
// clients do not all come back at once.
func (p *Pool) unload(unload <-chan struct{}) {
	p.mu.Lock()
	group := p.unloads[unload]
	delete(p.unloads, unload)
	p.mu.Unlock()
	for _, c := range group.conns {
		delay := group.closeDelay
		if delay > 0 {
			delay += rand.N(delay)
		}
		c.mu.Lock()
		c.endByLocked(time.Now().Add(delay), ErrUnload)
		c.mu.Unlock()
	}
}

func (p *Pool) heartbeats() {
	t := time.NewTicker(heartbeatTick)
	defer t.Stop()
	// One list, reused every tick: it is copied out of p.conns so that
	// heartbeatDue runs without the pool's lock.
	var conns []*conn
	for {
		select {
		case <-t.C:
			p.tick.Add(1)
			p.mu.Lock()
			for _, c := range p.conns {
				conns = append(conns, c)
			}
			p.mu.Unlock()
			for _, c := range conns {
				c.heartbeatDue()
			}
			clear(conns) // closed connections are not kept until the next tick
			conns = conns[:0]
		case <-p.stop:
			return
		}
	}
}

// waitedAtLeast is how long has surely passed since tick was read: one
// tick less than the ticks counted since, as tick may have been read just
// before the next one.
func (p *Pool) waitedAtLeast(tick uint32) time.Duration {
	ticks := p.tick.Load() - tick
	if ticks == 0 {
		return 0
	}
	return time.Duration(ticks-1) * heartbeatTick
}

// Close ends every connection and stops the pool's goroutines.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	conns := make([]*conn, 0, len(p.conns))
	for _, c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close(hub.ErrHubClosed)
	}
	close(p.stop)
	p.wg.Wait()
	p.poller.close()
}

// shard is one writer goroutine and the connections waiting for it.
type shard struct {
	mu    sync.Mutex
	ready []*conn
	wake  chan struct{}
	// writer is used by the writer goroutine only.
	writer vectorWriter
}

// push lists a connection for the writer. Only the first push after the
// writer took the list wakes it: the writer takes the list again until it
// finds it empty, so later pushes are seen without a wake-up of their own.
func (s *shard) push(c *conn) {
	s.mu.Lock()
	first := len(s.ready) == 0
	s.ready = append(s.ready, c)
	s.mu.Unlock()
	if !first {
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *shard) run(stop <-chan struct{}) {
	var batch []*conn
	for {
		select {
		case <-s.wake:
		case <-stop:
			return
		}
		for {
			// Two lists trade places, the writer's and the one pushes
			// go to, so both keep their capacity: a fan-out to 10,000
			// sockets grows none once they are that long.
			s.mu.Lock()
			batch, s.ready = s.ready, batch[:0]
			s.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for i, c := range batch {
				c.flush()
				batch[i] = nil
			}
		}
	}
}
