package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// runFloor serves the kernel's floor: the least a server can do to deliver
// a message to held SSE subscribers over HTTP/1.1. It answers cometbox's
// subscribe and publish URLs, so cometbench drives it as it drives
// cometbox, but it keeps no history, checks nothing and has no queues:
// a subscriber is a socket in a list, and a publish is one send(2) of the
// same bytes to each socket in turn, from one goroutine. No real server
// can deliver for less, so the floor's run next to the others' says how
// much of their cost is their own and how much is the kernel's.
//
// A socket that cannot take a whole frame at once is closed, and the run
// reports the messages it misses: the floor has no backlog to keep them in.
func runFloor(args []string) int {
	fs := flag.NewFlagSet("cometbench floor", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:18082", "address to serve on (loopback)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cometbench floor:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	fmt.Fprintf(os.Stderr, "cometbench floor: serving on %s\n", *listen)
	if err := serveFloor(ln); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "cometbench floor:", err)
		return 1
	}
	return 0
}

// serveFloor serves the floor on ln until ln is closed.
func serveFloor(ln net.Listener) error {
	f := &floor{}
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		go f.serve(conn)
	}
}

// floor is the floor server's state: the held sockets and the last id.
type floor struct {
	mu      sync.Mutex // held for a whole fan-out, so publishes go in order
	sockets []int
	lastID  uint64
}

// floorHead is the head of a held response, the same bytes cometbox's
// direct path writes apart from its Date: a close-delimited body, so each
// frame goes out as is.
const floorHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" +
	"Connection: close\r\n\r\n: ok\n\n"

// serve answers one connection's requests: a publish, or a subscribe,
// which takes the socket over.
func (f *floor) serve(conn net.Conn) {
	br := bufio.NewReader(conn)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			conn.Close()
			return
		}
		switch {
		case req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/comet/sub/"):
			f.hold(conn)
			return
		case req.Method == http.MethodPost && strings.HasPrefix(req.URL.Path, "/comet/pub/"):
			body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
			if err != nil {
				conn.Close()
				return
			}
			id, subscribers := f.publish(body)
			answer := fmt.Sprintf(`{"id":"%d","subscribers":%d}`, id, subscribers)
			fmt.Fprintf(conn, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(answer), answer)
		default:
			io.Copy(io.Discard, req.Body)
			io.WriteString(conn, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
		}
	}
}

// hold writes the response head and keeps a duplicate of the socket for
// publishes; conn itself is closed, so Go's poller forgets it.
func (f *floor) hold(conn net.Conn) {
	defer conn.Close()
	if _, err := io.WriteString(conn, floorHead); err != nil {
		return
	}
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		return
	}
	fd := -1
	raw.Control(func(s uintptr) { fd, _ = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
	if fd < 0 {
		return
	}
	f.mu.Lock()
	f.sockets = append(f.sockets, fd)
	f.mu.Unlock()
}

// publish sends one SSE frame of body to every held socket and reports its
// id and how many sockets took it.
func (f *floor) publish(body []byte) (id uint64, took int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastID++
	frame := strconv.AppendUint([]byte("id: "), f.lastID, 10)
	for line := range strings.SplitSeq(string(body), "\n") {
		frame = append(frame, "\ndata: "...)
		frame = append(frame, line...)
	}
	frame = append(frame, "\n\n"...)

	kept := f.sockets[:0]
	for _, fd := range f.sockets {
		if sendAll(fd, frame) {
			kept = append(kept, fd)
			continue
		}
		unix.Close(fd)
	}
	clear(f.sockets[len(kept):])
	f.sockets = kept
	return f.lastID, len(kept)
}

// sendAll is one non-blocking send(2) of frame, as a raw system call like
// cometbox's writers make; it reports whether the socket took all of it.
func sendAll(fd int, frame []byte) bool {
	const flags = unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL
	for {
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&frame[0])), uintptr(len(frame)), flags, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		return errno == 0 && int(n) == len(frame)
	}
}
