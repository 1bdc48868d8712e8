package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Held streams (SSE, NDJSON, WebSocket) are read by one poller goroutine over
// one epoll instance, not by a goroutine per connection. The reason is cost:
// the client has one core, like the server, and must stay well under the
// server's cost per delivery or it measures itself. A goroutine blocked in
// Read costs two reads per message (the data, then EAGAIN before it
// parks) plus a scheduler round trip; a level-triggered epoll needs one
// recv(2) per ready socket and one epoll_wait(2) per batch of them. On this
// machine that halves the client's CPU per delivery.

// poller reads held connections as they become readable.
type poller struct {
	epfd int
	// epoll is epfd in Go's own netpoller: the loop parks there when no
	// socket is ready, as any goroutine waiting on the network does, so
	// the publisher's goroutines run as soon as their replies come.
	// Blocked in epoll_wait(2) instead, the loop kept its P, and on one
	// core nothing else ran until sysmon took the P back, up to 10 ms
	// later: a 10 ms pause between messages.
	epoll *os.File
	wait  syscall.RawConn
	buf   []byte // one read buffer, used by the loop only

	mu    sync.Mutex
	conns []*heldConn // by fd: a lookup per event, cheaper than a map's
	gen   int32
	done  chan struct{}

	// delay is a pause after a wait that found few sockets ready. Waking
	// up is the expensive part of a wait (in a VM above all): with 10,000
	// subscribers a pause of 0.5 ms gathers over a hundred ready sockets
	// per wait instead of three, cutting the client's CPU per delivery by
	// about 40 %, for at most that much added to a measured latency.
	delay         time.Duration
	waits, events atomic.Int64
	closeOnce     sync.Once
}

// heldConn is one stream handed to the poller: its socket, the decoder of
// what it carries, and where to report its end.
type heldConn struct {
	fd     int
	gen    int32 // tells a reused fd number from the connection it was
	decode decoder
	ended  chan error // buffered: receives the reason, once
}

// decoder turns what a held connection reads into lines or messages. w
// takes what must go back to the server (a WebSocket's pongs).
type decoder interface {
	feed(b []byte, w io.Writer) error
}

// streamDecoder reads a streamed response body: transfer coding, then
// lines.
type streamDecoder struct {
	body  bodyDecoder
	lines lineSplitter
	line  func([]byte) error // one complete line of the stream
}

func newStreamDecoder(resp *http.Response, maxLine int, line func([]byte) error) *streamDecoder {
	return &streamDecoder{body: newBodyDecoder(resp), lines: lineSplitter{max: maxLine}, line: line}
}

func (d *streamDecoder) feed(b []byte, _ io.Writer) error {
	return d.body.feed(b, func(data []byte) error {
		return d.lines.feed(data, d.line)
	})
}

func newPoller(delay time.Duration) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	epoll := os.NewFile(uintptr(epfd), "epoll") // non-blocking: in the netpoller
	wait, err := epoll.SyscallConn()
	if err != nil {
		epoll.Close()
		return nil, err
	}
	p := &poller{epfd: epfd, epoll: epoll, wait: wait, buf: make([]byte, 256<<10), done: make(chan struct{}), delay: delay}
	go p.loop()
	return p, nil
}

// hold takes conn over from its net.Conn: the socket is duplicated out of
// Go's own poller, buffered bytes already read past the response head are
// decoded first, and the rest is read by the loop. The returned channel
// receives why the stream ended; stop closes it early.
func (p *poller) hold(conn net.Conn, br *bufio.Reader, d decoder) (ended <-chan error, stop func(), err error) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return nil, nil, errors.New("hold: not a TCP connection")
	}
	f, err := tc.File() // a dup: closing conn below leaves the socket open
	if err != nil {
		return nil, nil, fmt.Errorf("hold: %w", err)
	}
	fd, err := syscall.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("hold: dup: %w", err)
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, nil, fmt.Errorf("hold: %w", err)
	}
	c := &heldConn{fd: fd, decode: d, ended: make(chan error, 1)}
	// What the response head's reader took past the head is the start of
	// the body.
	var pre []byte
	if n := br.Buffered(); n > 0 {
		pre, _ = br.Peek(n)
		pre = append([]byte(nil), pre...)
	}
	conn.Close()

	p.mu.Lock()
	defer p.mu.Unlock()
	if err := c.feed(pre); err != nil {
		syscall.Close(fd)
		c.ended <- err
		return c.ended, func() {}, nil
	}
	p.gen++
	c.gen = p.gen
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd), Pad: c.gen}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		syscall.Close(fd)
		return nil, nil, fmt.Errorf("hold: epoll_ctl: %w", err)
	}
	if fd >= len(p.conns) {
		p.conns = append(p.conns, make([]*heldConn, fd+1-len(p.conns))...)
	}
	p.conns[fd] = c
	return c.ended, func() { p.end(c, errors.New("stopped")) }, nil
}

// end unregisters and closes c, once, reporting err.
func (p *poller) end(c *heldConn, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked(c, err)
}

func (p *poller) endLocked(c *heldConn, err error) {
	if p.conns[c.fd] != c {
		return // ended already
	}
	p.conns[c.fd] = nil
	_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
	syscall.Close(c.fd)
	c.ended <- err
}

// loop waits for readable sockets and reads each once: level-triggered, so
// a socket with more to read is reported again by the next wait.
func (p *poller) loop() {
	events := make([]syscall.EpollEvent, 512)
	for {
		// Let the publisher run first: the last batch's deliveries may
		// have woken it, and while sockets stay ready this loop never
		// parks.
		runtime.Gosched()
		var n int
		var err error
		waitErr := p.wait.Read(func(fd uintptr) bool {
			n, err = syscall.EpollWait(int(fd), events, 0)
			return n > 0 || err != nil && !errors.Is(err, syscall.EINTR)
		})
		select {
		case <-p.done:
			return
		default:
		}
		if waitErr != nil || err != nil {
			return
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			c := p.conns[ev.Fd]
			if c == nil || c.gen != ev.Pad {
				continue // ended while this batch was gathered
			}
			p.read(c)
		}
		p.mu.Unlock()
		p.waits.Add(1)
		p.events.Add(int64(n))
		if p.delay > 0 && n < len(events)/8 {
			time.Sleep(p.delay)
		}
	}
}

// read reads what c has and decodes it; called with p.mu held.
func (p *poller) read(c *heldConn) {
	n, err := readNonblocking(c.fd, p.buf)
	switch {
	case errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR):
		return
	case err != nil:
		p.endLocked(c, fmt.Errorf("stream read: %w", err))
		return
	case n == 0:
		p.endLocked(c, errors.New("stream: ended"))
		return
	}
	if err := c.feed(p.buf[:n]); err != nil {
		p.endLocked(c, err)
	}
}

// close ends every held connection and the loop.
func (p *poller) close() {
	p.mu.Lock()
	for _, c := range p.conns {
		if c != nil {
			p.endLocked(c, errors.New("poller closed"))
		}
	}
	p.mu.Unlock()
	p.closeOnce.Do(func() {
		close(p.done)
		p.epoll.Close() // wakes the loop
	})
}

// feed decodes bytes read from the socket.
func (c *heldConn) feed(b []byte) error { return c.decode.feed(b, c) }

// Write sends a decoder's answer on the socket, which is non-blocking: a
// few bytes that do not fit at once end the connection.
func (c *heldConn) Write(b []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(c.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	switch {
	case errno != 0:
		return 0, fmt.Errorf("write: %w", errno)
	case int(n) < len(b):
		return int(n), io.ErrShortWrite
	}
	return int(n), nil
}

// bodyDecoder undoes the transfer coding of a streamed response body
// incrementally (RFC 9112 §7.1): chunked, or the bytes as they come when
// the body is delimited by the connection's end.
type bodyDecoder struct {
	chunked bool
	state   int   // chunked: reading a size line, data, or the CRLF after data
	remain  int64 // data bytes left in the current chunk
	size    []byte
}

const (
	chunkSize = iota
	chunkData
	chunkCRLF
)

func newBodyDecoder(resp *http.Response) bodyDecoder {
	for _, te := range resp.TransferEncoding {
		if te == "chunked" {
			return bodyDecoder{chunked: true}
		}
	}
	return bodyDecoder{}
}

// errBodyEnded is the last chunk: the server ended the stream cleanly.
var errBodyEnded = errors.New("stream: ended by the server")

func (d *bodyDecoder) feed(b []byte, out func([]byte) error) error {
	if !d.chunked {
		if len(b) == 0 {
			return nil
		}
		return out(b)
	}
	for len(b) > 0 {
		switch d.state {
		case chunkSize:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				if len(d.size)+len(b) > 1024 {
					return errors.New("chunked: size line too long")
				}
				d.size = append(d.size, b...)
				return nil
			}
			d.size = append(d.size, b[:i]...)
			b = b[i+1:]
			line := bytes.TrimRight(d.size, "\r")
			if semi := bytes.IndexByte(line, ';'); semi >= 0 {
				line = line[:semi] // chunk extensions
			}
			n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
			d.size = d.size[:0]
			if err != nil || n < 0 {
				return fmt.Errorf("chunked: bad size line %q", line)
			}
			if n == 0 {
				return errBodyEnded
			}
			d.remain, d.state = n, chunkData
		case chunkData:
			take := int(min(d.remain, int64(len(b))))
			if err := out(b[:take]); err != nil {
				return err
			}
			b = b[take:]
			if d.remain -= int64(take); d.remain == 0 {
				d.state = chunkCRLF
			}
		case chunkCRLF:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				return nil // "\r" alone; the "\n" comes next
			}
			b = b[i+1:]
			d.state = chunkSize
		}
	}
	return nil
}

// lineSplitter cuts a byte stream into lines ("\n", an optional "\r"
// before it dropped), keeping a partial line between feeds. Complete lines
// inside one feed are passed without a copy.
type lineSplitter struct {
	partial []byte
	max     int
}

func (l *lineSplitter) feed(b []byte, line func([]byte) error) error {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(l.partial)+len(b) > l.max {
				return fmt.Errorf("stream: line longer than %d bytes", l.max)
			}
			l.partial = append(l.partial, b...)
			return nil
		}
		var full []byte
		if len(l.partial) > 0 {
			l.partial = append(l.partial, b[:i]...)
			full = l.partial
		} else {
			full = b[:i]
		}
		b = b[i+1:]
		err := line(bytes.TrimSuffix(full, []byte{'\r'}))
		l.partial = l.partial[:0]
		if err != nil {
			return err
		}
	}
	return nil
}

// goroutineReaders makes held streams be read by a goroutine each instead
// of the poller (-readers goroutine): the plain Go way, kept to compare.
var goroutineReaders bool

// readHeld reads a held stream on the calling goroutine until it ends.
func readHeld(ctx context.Context, conn net.Conn, br *bufio.Reader, d decoder, bufSize int) error {
	defer conn.Close()
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	buf := make([]byte, bufSize)
	for {
		n, err := br.Read(buf)
		if n > 0 {
			if err := d.feed(buf[:n], conn); err != nil {
				return err
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("stream: ended")
			}
			return fmt.Errorf("stream read: %w", err)
		}
	}
}

// readNonblocking is recv(2) on a non-blocking socket as a raw syscall: it
// never waits, so it need not tell the scheduler it entered a syscall.
// Through that path, sysmon kept taking the poller's P away and handing it
// to another thread, which cost the client a context switch every few
// reads and made it, not the server, the slower side of a fan-out. recv
// rather than read(2) skips the kernel's file layer, about 7 % of the
// client's core in a fan-out.
func readNonblocking(fd int, buf []byte) (int, error) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), syscall.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}
