//go:build linux

package direct

import (
	"errors"
	"sync"

	"golang.org/x/sys/unix"
)

// poller watches every hijacked socket with one epoll instance and one
// goroutine: a hangup or an error ends the connection, writability wakes
// a connection whose last write would have blocked, and input wakes a
// WebSocket's reader. This is how a disconnect is noticed without a
// goroutine blocked in Read per socket.
// Go's own netpoller also holds these fds; epoll instances are independent,
// and no goroutine waits on them there.
type poller struct {
	epfd int

	mu    sync.Mutex
	conns map[int32]*conn

	stop chan struct{}
	done chan struct{}
}

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &poller{epfd: epfd, conns: make(map[int32]*conn), stop: make(chan struct{}), done: make(chan struct{})}
	go p.loop()
	return p, nil
}

// add watches a connection: hangups always, writability edge-triggered.
func (p *poller) add(c *conn) error {
	p.mu.Lock()
	p.conns[int32(c.fd)] = c
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR | unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLET, Fd: int32(c.fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		p.remove(c)
		return err
	}
	return nil
}

// remove stops watching a connection. It must run before the fd is closed,
// or a reused fd number could be taken for the old connection.
func (p *poller) remove(c *conn) {
	p.mu.Lock()
	if p.conns[int32(c.fd)] == c {
		delete(p.conns, int32(c.fd))
	}
	p.mu.Unlock()
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
}

// pollTimeout bounds one epoll_wait, so that the loop notices stop.
const pollTimeout = 500 // milliseconds

func (p *poller) loop() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		n, err := unix.EpollWait(p.epfd, events, pollTimeout)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			p.mu.Lock()
			c := p.conns[ev.Fd]
			p.mu.Unlock()
			if c == nil {
				continue
			}
			switch {
			case ev.Events&(unix.EPOLLHUP|unix.EPOLLERR) != 0:
				c.hangup()
			case c.ws != nil && ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP) != 0:
				// A WebSocket client's last frames (its close) may come
				// with its FIN: the reader reads them, then the end.
				c.readable()
			case ev.Events&unix.EPOLLRDHUP != 0:
				c.hangup()
			case ev.Events&unix.EPOLLIN != 0:
				c.discardInput()
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				c.writable()
			}
		}
	}
}

func (p *poller) close() {
	close(p.stop)
	<-p.done
	unix.Close(p.epfd)
}
