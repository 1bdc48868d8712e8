package redis

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// redisServerBin is where Debian's redis-server package installs the
// server. These tests need the real thing and fail, never skip, without it:
// a store that was never run against Redis must not look green.
const redisServerBin = "/usr/bin/redis-server"

// serverWait bounds how long a redis-server may take to start or stop.
const serverWait = 15 * time.Second

// redisServer is a redis-server process owned by one test: started on a
// free loopback port with persistence off, killed in t.Cleanup.
type redisServer struct {
	t     testing.TB
	bin   string
	port  int
	dir   string
	extra []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	output []string // the last lines the server wrote, for failure messages
}

func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	srv := newRedisServer(t, extra...)
	srv.start()
	return srv
}

// newRedisServer picks a port and a data directory but starts nothing yet:
// a store can then be pointed at a Redis that is not there.
func newRedisServer(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	bin := redisServerBin
	if _, err := os.Stat(bin); err != nil {
		path, lookErr := exec.LookPath("redis-server")
		if lookErr != nil {
			t.Fatalf("redis-server is not installed (%v; not in PATH either): these tests need a real Redis; install it with `apt-get install redis-server`", err)
		}
		bin = path
	}
	srv := &redisServer{t: t, bin: bin, port: freePort(t), dir: t.TempDir(), extra: extra}
	t.Cleanup(srv.kill)
	return srv
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (srv *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(srv.port) }

func (srv *redisServer) url() string { return "redis://" + srv.addr() }

// start runs the server and waits for it to say it accepts connections.
// The data directory is kept across restarts, so a server stopped with
// SHUTDOWN SAVE comes back with its data.
func (srv *redisServer) start() {
	srv.t.Helper()
	args := []string{
		"--port", strconv.Itoa(srv.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--dir", srv.dir, "--dbfilename", "dump.rdb",
		"--daemonize", "no", "--logfile", "",
	}
	cmd := exec.Command(srv.bin, append(args, srv.extra...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		srv.t.Fatalf("redis-server: %v", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		srv.t.Fatalf("start redis-server: %v", err)
	}
	ready := make(chan struct{})
	exited := make(chan struct{})
	srv.mu.Lock()
	srv.cmd, srv.exited, srv.output = cmd, exited, nil
	srv.mu.Unlock()
	// The scanner drains the server's output until the process exits (so
	// the server never blocks on a full pipe), then reaps it.
	go func() {
		defer close(exited)
		scanner := bufio.NewScanner(out)
		signalled := false
		for scanner.Scan() {
			line := scanner.Text()
			srv.mu.Lock()
			srv.output = append(srv.output, line)
			if len(srv.output) > 40 {
				srv.output = srv.output[1:]
			}
			srv.mu.Unlock()
			if !signalled && strings.Contains(line, "Ready to accept connections") {
				signalled = true
				close(ready)
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case <-ready:
	case <-exited:
		srv.t.Fatalf("redis-server exited at start:\n%s", srv.lastOutput())
	case <-time.After(serverWait):
		srv.t.Fatalf("redis-server not ready after %v:\n%s", serverWait, srv.lastOutput())
	}
}

func (srv *redisServer) lastOutput() string {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return strings.Join(srv.output, "\n")
}

func (srv *redisServer) process() (*os.Process, chan struct{}) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.cmd == nil {
		return nil, nil
	}
	return srv.cmd.Process, srv.exited
}

// kill ends the server at once, data and all.
func (srv *redisServer) kill() {
	p, exited := srv.process()
	if p == nil {
		return // never started
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = p.Kill()
	select {
	case <-exited:
	case <-time.After(serverWait):
		srv.t.Errorf("redis-server did not exit after SIGKILL")
	}
}

// shutdownSave stops the server the proper way, writing its data to the
// data directory first, and waits for the process to end.
func (srv *redisServer) shutdownSave() {
	srv.t.Helper()
	c := srv.client()
	defer c.Close()
	// The server closes the connection instead of answering.
	_ = c.Do(context.Background(), "SHUTDOWN", "SAVE").Err()
	_, exited := srv.process()
	select {
	case <-exited:
	case <-time.After(serverWait):
		srv.t.Fatalf("redis-server did not exit after SHUTDOWN SAVE:\n%s", srv.lastOutput())
	}
}

// pause and resume freeze the process with SIGSTOP and thaw it with
// SIGCONT: Redis is there but answers nothing, as on a hung host.
func (srv *redisServer) pause() {
	srv.t.Helper()
	p, _ := srv.process()
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		srv.t.Fatalf("SIGSTOP redis-server: %v", err)
	}
}

func (srv *redisServer) resume() {
	srv.t.Helper()
	p, _ := srv.process()
	if err := p.Signal(syscall.SIGCONT); err != nil {
		srv.t.Fatalf("SIGCONT redis-server: %v", err)
	}
}

// client is a plain connection for the test's own commands (FLUSHALL,
// looking at keys).
func (srv *redisServer) client() *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: srv.addr(), MaxRetries: -1, DialerRetries: 1})
}

func (srv *redisServer) do(args ...any) any {
	srv.t.Helper()
	c := srv.client()
	defer c.Close()
	v, err := c.Do(context.Background(), args...).Result()
	if err != nil && err != goredis.Nil {
		srv.t.Fatalf("redis %v: %v", args, err)
	}
	return v
}
