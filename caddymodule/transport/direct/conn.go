//go:build linux

package direct

import (
	"errors"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/message"
)

// conn is one hijacked subscriber socket. It is the hub.Sink of its
// subscription: Send appends the message's shared, pre-encoded buffers to a
// bounded backlog and hands the connection to its shard's writer; no
// goroutine belongs to it.
type conn struct {
	pool *Pool
	hub  *hub.Hub // whose queue limits bound the backlog
	// fd is the socket, owned here: a duplicate of the hijacked
	// connection's descriptor, whose net.Conn (with its poll descriptor and
	// addresses) is closed at once, so an idle subscriber keeps only this
	// struct and its subscription. Every syscall on it runs under mu, and
	// close closes it under mu, so a reused descriptor number is never
	// written to by mistake.
	fd int
	// gen tells this connection from an earlier one on the same fd
	// number, in epoll events gathered before that one closed.
	gen    uint32
	stream *Stream

	mu      sync.Mutex
	out     [][]byte // backlog; out[0] is written from offset on
	offset  int
	pending int // bytes in the backlog
	frames  int // messages in the backlog
	written int64
	// waitTick is the pool's tick when the backlog last started waiting
	// or the socket last took some of it: the write timeout counts from
	// there, in ticks, so that a delivery costs no clock reading. With
	// nothing queued, it is when the socket last took bytes: heartbeats
	// count from there too.
	waitTick uint32
	dirty    bool // waiting in its shard's list
	blocked  bool // the socket would block: wait for EPOLLOUT
	closed   bool
	ending   error // end once the backlog is written
	sub      *hub.Subscription
	ws       *wsState      // a WebSocket's; nil for a plain stream
	end      *scheduledEnd // nil until an end is scheduled
	release  func()        // runs once the socket is closed
}

// scheduledEnd is the one end scheduled for a connection: the earliest of
// a grant's expiry and an unload's delay.
type scheduledEnd struct {
	timer *time.Timer
	at    time.Time
}

// Reasons a hijacked connection ends, besides the hub's and those of
// held.go.
var (
	errGone    = errors.New("subscriber went away")
	errStalled = errors.New("write_timeout: the subscriber took nothing")
	errWrite   = errors.New("write failed")
)

// Start implements hub.Sink: the replay is queued whole, whatever the limits.
func (c *conn) Start(replay []*message.Message) {
	c.mu.Lock()
	for _, m := range replay {
		c.appendLocked(m)
	}
	c.mu.Unlock()
	c.kick()
}

// Send implements hub.Sink. It never blocks: a backlog past the limits
// answers false and the hub cuts the subscriber, which resumes by cursor.
func (c *conn) Send(m *message.Message) bool {
	c.mu.Lock()
	if c.closed || c.ending != nil {
		c.mu.Unlock()
		return true
	}
	limitFrames, limitBytes := c.hub.QueueLimits()
	if c.frames >= limitFrames || c.pending > 0 && limitBytes > 0 && c.pending+m.Size() > limitBytes {
		c.mu.Unlock()
		return false
	}
	c.appendLocked(m)
	c.unlockAndKick()
	return true
}

// Close implements hub.Sink: what is queued is still written, then the
// stream's farewell for the reason, then the socket is closed.
func (c *conn) Close(reason error) {
	var farewell []byte
	if c.stream.Farewell != nil {
		farewell = c.stream.Farewell(reason)
	}
	c.endWith(farewell, reason)
}

// endWith queues last bytes, if any, and ends the connection after them.
func (c *conn) endWith(last []byte, reason error) {
	c.mu.Lock()
	if c.closed || c.ending != nil {
		c.mu.Unlock()
		return
	}
	if len(last) > 0 {
		c.appendRawLocked(last)
	}
	c.ending = reason
	c.mu.Unlock()
	c.kick()
}

func (c *conn) appendLocked(m *message.Message) {
	from := len(c.out)
	if from == 0 {
		c.waitTick = c.pool.tick.Load()
	}
	c.out = c.stream.AppendFrame(c.out, m)
	for _, b := range c.out[from:] {
		c.pending += len(b)
	}
	c.frames++
}

// appendRawLocked queues bytes of this connection's own (a head, a
// farewell, a WebSocket control frame).
func (c *conn) appendRawLocked(b []byte) {
	if len(c.out) == 0 {
		c.waitTick = c.pool.tick.Load()
	}
	c.out = append(c.out, b)
	c.pending += len(b)
}

// kick hands the connection to its writer unless it is already waiting
// there or for the socket to take more.
func (c *conn) kick() {
	c.mu.Lock()
	c.unlockAndKick()
}

// unlockAndKick is kick for a caller holding mu, which it releases: the
// shard's lock is never taken under a connection's.
func (c *conn) unlockAndKick() {
	queue := c.markDirtyLocked()
	c.mu.Unlock()
	if queue {
		c.shard().push(c)
	}
}

// shard is the writer the connection's socket belongs to.
func (c *conn) shard() *shard { return c.pool.shards[c.fd%len(c.pool.shards)] }

// markDirtyLocked reports whether the connection must join its shard's
// list: it is not there yet, nor waiting for the socket.
func (c *conn) markDirtyLocked() bool {
	if c.dirty || c.blocked || c.closed {
		return false
	}
	c.dirty = true
	return true
}

// flush writes what the socket takes now, without blocking: the writer
// goroutine of a shard serves thousands of sockets.
func (c *conn) flush() {
	c.mu.Lock()
	c.dirty = false
	if c.closed {
		c.mu.Unlock()
		return
	}
	for len(c.out) > 0 {
		// flush runs on the shard's writer goroutine, whose iovec array
		// is reused.
		n, err := c.shard().writer.write(c.fd, c.out[0][c.offset:], c.out[1:])
		if err == nil {
			c.advanceLocked(n)
		}
		if errors.Is(err, unix.EAGAIN) {
			c.blocked = true // EPOLLOUT (edge-triggered) wakes it
			c.mu.Unlock()
			return
		}
		if err != nil {
			c.mu.Unlock()
			c.close(errWrite)
			return
		}
	}
	c.frames = 0
	if c.stream.MaxBytes > 0 && c.written >= c.stream.MaxBytes && c.ending == nil {
		c.mu.Unlock()
		c.Close(ErrMaxBytes)
		return
	}
	ending := c.ending
	c.mu.Unlock()
	if ending != nil {
		c.finish(ending)
	}
}

// finish ends a connection whose last bytes are written. A WebSocket
// waits for the client to answer its close frame first.
func (c *conn) finish(reason error) {
	if c.ws != nil && c.lingerAfterClose() {
		return
	}
	c.close(reason)
}

// advanceLocked drops n written bytes from the backlog, and the empty
// buffers they reach.
func (c *conn) advanceLocked(n int) {
	c.written += int64(n)
	c.pending -= n
	c.waitTick = c.pool.tick.Load()
	done := 0
	for done < len(c.out) {
		rest := len(c.out[done]) - c.offset
		if n < rest {
			c.offset += n
			break
		}
		n -= rest
		c.out[done] = nil
		done++
		c.offset = 0
	}
	// The backlog keeps its array, moved down, until the subscriber has
	// been quiet for a heartbeat tick (heartbeatDue): a delivery to a
	// subscriber that gets messages then allocates nothing, where the
	// garbage of 10,000 one-buffer arrays a message made the collector run
	// every dozen messages in a fan-out.
	c.out = c.out[:copy(c.out, c.out[done:])]
}

// writable is the poller's news that a blocked socket takes more.
func (c *conn) writable() {
	c.mu.Lock()
	blocked := c.blocked
	c.blocked = false
	c.mu.Unlock()
	if blocked {
		c.kick()
	}
}

// hangup is the poller's news that the peer is gone.
func (c *conn) hangup() { c.close(errGone) }

// discardInput reads and drops what a subscriber sends after its request
// (nothing, normally); end of input means it went away.
func (c *conn) discardInput() {
	var buf [512]byte
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		n, err := unix.Read(c.fd, buf[:])
		c.mu.Unlock()
		switch {
		case n > 0 || errors.Is(err, unix.EINTR):
			continue
		case n == 0 && err == nil:
			c.close(errGone)
			return
		default:
			return // EAGAIN: drained
		}
	}
}

// heartbeatDue queues a heartbeat if nothing was written for an interval,
// and cuts the connection if a backlog has waited past the write timeout.
// With nothing queued, waitTick is when the socket last took bytes.
func (c *conn) heartbeatDue() {
	c.mu.Lock()
	if !c.closed && len(c.out) > 0 && c.stream.WriteTimeout > 0 && c.pool.waitedAtLeast(c.waitTick) >= c.stream.WriteTimeout {
		c.mu.Unlock()
		c.close(errStalled)
		return
	}
	if len(c.out) == 0 && c.out != nil && c.pool.waitedAtLeast(c.waitTick) > 0 {
		c.out = nil // quiet for a tick: an idle subscriber keeps no backlog array
	}
	if c.ws != nil {
		c.mu.Unlock()
		c.pingDue()
		return
	}
	if c.closed || c.ending != nil || len(c.out) > 0 || c.pool.waitedAtLeast(c.waitTick) < c.stream.Heartbeat {
		c.mu.Unlock()
		return
	}
	c.appendRawLocked(c.stream.HeartbeatBytes)
	c.mu.Unlock()
	c.kick()
}

// close ends the connection: the poller lets go of the fd before it is
// closed, and the hub of the subscription after.
func (c *conn) close(reason error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.out = nil
	if c.end != nil {
		c.end.timer.Stop()
	}
	sub := c.sub
	c.pool.forget(c) // before the fd number can be reused
	unix.Close(c.fd)
	c.mu.Unlock()
	if sub != nil {
		sub.Close()
	}
	if c.ws != nil {
		c.ws.session.Closed()
	}
	if c.release != nil {
		c.release()
	}
}

// endByLocked schedules the connection's end, for reason, at the latest
// at: an end already due sooner stays.
func (c *conn) endByLocked(at time.Time, reason error) {
	if c.closed || c.end != nil && !at.Before(c.end.at) {
		return
	}
	if c.end != nil {
		c.end.timer.Stop()
	}
	c.end = &scheduledEnd{timer: time.AfterFunc(time.Until(at), func() { c.Close(reason) }), at: at}
}

var _ hub.Sink = (*conn)(nil)
