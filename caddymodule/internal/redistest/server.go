// Package redistest runs real redis-server processes for the module's
// tests. The Redis store and the Caddy nodes built on it are only worth
// their tests when those talk to the real server, with its timeouts,
// restarts and hangs, so there is no fake here; being internal, the package
// is importable only from inside the module, which means from its tests.
package redistest

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

// serverBin is where Debian's redis-server package installs the server.
// The tests need the real thing and fail, never skip, without it: CI
// installs it, and a store never run against Redis must not look green.
const serverBin = "/usr/bin/redis-server"

// serverWait bounds how long a redis-server may take to start or stop. It
// takes milliseconds; the bound only keeps a broken one from hanging a test.
const serverWait = 20 * time.Second

// outputLines is how many of the server's last output lines are kept for
// failure messages: enough for the error that stopped it, and bounded, as
// the server writes for as long as it runs.
const outputLines = 40

// Server is a redis-server process owned by one test: on a free loopback
// port, persistence off (SHUTDOWN SAVE still writes its data directory, so
// a restart on the same port comes back with the data), killed in
// t.Cleanup.
type Server struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	args []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	output []string // the last lines the server wrote, for failure messages
}

// Start starts a redis-server with the given extra command-line arguments,
// which come last and so override the defaults (a test may move the server
// to a TLS port with "--port", "0", for example).
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	s := New(t, args...)
	s.Start()
	return s
}

// New picks a port and a data directory but starts nothing yet, so that a
// client can be pointed at a Redis that is not there; Start brings it up.
func New(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := serverBin
	if _, err := os.Stat(bin); err != nil {
		path, lookErr := exec.LookPath("redis-server")
		if lookErr != nil {
			t.Fatalf("redis-server is not installed (%v; not in PATH either): these tests need a real Redis; install it with `apt-get install redis-server`", err)
		}
		bin = path
	}
	s := &Server{t: t, bin: bin, port: FreePort(t), dir: t.TempDir(), args: args}
	t.Cleanup(s.Kill)
	return s
}

// FreePort is a loopback TCP port that nothing listened on a moment ago.
// Another process may take it before the test does; on a test machine that
// is rare enough.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Port is the port the server listens on, the same across restarts.
func (s *Server) Port() int { return s.port }

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is the redis:// URL of the server's database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Start runs the server and waits until it says it accepts connections.
// The data directory is kept across restarts, so a server stopped with
// ShutdownSave comes back with its data.
func (s *Server) Start() {
	s.t.Helper()
	args := []string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--dir", s.dir, "--dbfilename", "dump.rdb",
		"--daemonize", "no", "--logfile", "",
	}
	cmd := exec.Command(s.bin, append(args, s.args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatalf("redis-server: %v", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	ready, exited := make(chan struct{}), make(chan struct{})
	s.mu.Lock()
	s.cmd, s.exited, s.output = cmd, exited, nil
	s.mu.Unlock()
	// Drain the output until the process ends (a full pipe would block
	// the server), then reap it. The process owns this goroutine: Kill, in
	// t.Cleanup at the latest, ends both.
	go func() {
		defer close(exited)
		lines := bufio.NewScanner(out)
		signalled := false
		for lines.Scan() {
			line := lines.Text()
			s.mu.Lock()
			s.output = append(s.output, line)
			if len(s.output) > outputLines {
				s.output = s.output[1:]
			}
			s.mu.Unlock()
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
		s.t.Fatalf("redis-server exited at start:\n%s", s.Output())
	case <-time.After(serverWait):
		s.t.Fatalf("redis-server not ready after %v:\n%s", serverWait, s.Output())
	}
}

// Output is the last lines the server wrote since it last started.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.output, "\n")
}

func (s *Server) process() (*os.Process, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil, nil
	}
	return s.cmd.Process, s.exited
}

// Kill ends the server at once, data and all, as a crash would; a frozen
// one is thawed by SIGKILL too. It does nothing to a server that was never
// started or has already exited, so that it can always run in t.Cleanup.
func (s *Server) Kill() {
	p, exited := s.process()
	if p == nil {
		return
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
		s.t.Errorf("redis-server did not exit after SIGKILL")
	}
}

// ShutdownSave stops the server the proper way, writing its data to the
// data directory first, and waits for the process to end: connections drop
// and are refused until Start brings it back on the same port.
func (s *Server) ShutdownSave() {
	s.t.Helper()
	c := s.Client()
	defer c.Close()
	// The server closes the connection instead of answering.
	_ = c.Do(context.Background(), "SHUTDOWN", "SAVE").Err()
	_, exited := s.process()
	select {
	case <-exited:
	case <-time.After(serverWait):
		s.t.Fatalf("redis-server did not exit after SHUTDOWN SAVE:\n%s", s.Output())
	}
}

// Freeze and Thaw stop the process with SIGSTOP and let it go on with
// SIGCONT: Redis is there, its connections stay open, and nothing answers,
// as on a hung host. Commands sent meanwhile run when it thaws.
func (s *Server) Freeze() { s.signal(syscall.SIGSTOP) }

// Thaw lets a frozen server go on; see Freeze.
func (s *Server) Thaw() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	p, _ := s.process()
	if err := p.Signal(sig); err != nil {
		s.t.Fatalf("%v redis-server: %v", sig, err)
	}
}

// Client is a plain connection for the test's own commands (FLUSHALL,
// looking at keys). It neither retries commands nor keeps redialling, so
// that a command to a server that is down fails at once instead of
// hiding the outage under the test.
func (s *Server) Client() *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: s.Addr(), MaxRetries: -1, DialerRetries: 1})
}

// Do sends one command on a connection of its own and answers the reply,
// nil for a nil reply. Any error fails the test.
func (s *Server) Do(args ...any) any {
	s.t.Helper()
	c := s.Client()
	defer c.Close()
	v, err := c.Do(context.Background(), args...).Result()
	if err != nil && err != goredis.Nil {
		s.t.Fatalf("redis %v: %v", args, err)
	}
	return v
}
