//go:build linux

package direct

import (
	"errors"

	"golang.org/x/sys/unix"
)

// poller watches every hijacked socket with one epoll instance and one
// goroutine: a hangup or an error ends the connection, writability wakes
// a connection whose last write would have blocked, and input wakes a
// WebSocket's reader. This is how a disconnect is noticed without a
// goroutine blocked in Read per socket. The fds are duplicates whose
// net.Conn was closed, so Go's own netpoller no longer watches them.
type poller struct {
	epfd int
	// lookup finds the connection of an event's fd and generation.
	lookup func(fd int32, gen uint32) *conn

	stop chan struct{}
	done chan struct{}
}

func newPoller(lookup func(fd int32, gen uint32) *conn) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &poller{epfd: epfd, lookup: lookup, stop: make(chan struct{}), done: make(chan struct{})}
	go p.loop()
	return p, nil
}

// add watches a listed connection: hangups always, writability
// edge-triggered. Its events carry its generation.
func (p *poller) add(c *conn) error {
	ev := unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR | unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLET, Fd: int32(c.fd), Pad: int32(c.gen)}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev)
}

// remove stops watching a connection. It must run before the fd is closed.
func (p *poller) remove(c *conn) {
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
			c := p.lookup(ev.Fd, uint32(ev.Pad))
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
