package caddymodule_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// caddyBinary is cmd/caddy, built once by TestMain: the tests boot the same
// binary users run, from Caddyfiles in testdata/. Each Caddy gets its own
// admin port, so this package owns no fixed port.
var caddyBinary string

// binaryDir holds the Caddy binaries the tests build; TestMain removes it.
var binaryDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cometbox-caddy")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binaryDir = dir
	caddyBinary = filepath.Join(dir, "caddy")
	if err := buildCaddy(caddyBinary, "github.com/cometbox/cometbox/cmd/caddy"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// naiveCaddy is Caddy with the naivefanout baseline instead of comet. Only
// the HTTP/2 comparison and the test guarding the baseline boot it, so it
// is built on first use rather than by TestMain for every run.
var naiveCaddy struct {
	once   sync.Once
	binary string
	err    error
}

func naiveCaddyBinary(t testing.TB) string {
	t.Helper()
	naiveCaddy.once.Do(func() {
		binary := filepath.Join(binaryDir, "naive-caddy")
		naiveCaddy.err = buildCaddy(binary, "github.com/cometbox/cometbox/caddymodule/internal/naivefanout/naivecaddy")
		naiveCaddy.binary = binary
	})
	if naiveCaddy.err != nil {
		t.Fatal(naiveCaddy.err)
	}
	return naiveCaddy.binary
}

// buildCaddy builds the Caddy main package pkg into binary.
func buildCaddy(binary, pkg string) error {
	build := exec.Command("go", "build", "-o", binary, pkg)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	return nil
}

// caddyServer is a running Caddy process.
type caddyServer struct {
	t       testing.TB
	binary  string
	config  string
	env     []string
	cmd     *exec.Cmd
	admin   string
	baseURL string
	logs    *syncBuffer
}

// startCaddy boots Caddy from a Caddyfile in testdata with free loopback
// ports in HTTP_PORT and ADMIN_PORT, plus extra environment, and waits until
// it answers.
func startCaddy(t testing.TB, caddyfile string, extraEnv ...string) *caddyServer {
	t.Helper()
	return startServer(t, caddyBinary, caddyfile, extraEnv...)
}

// startServer is startCaddy with another Caddy binary.
func startServer(t testing.TB, binary, caddyfile string, extraEnv ...string) *caddyServer {
	t.Helper()
	httpPort, adminPort := freePort(t), freePort(t)
	s := &caddyServer{
		t:       t,
		binary:  binary,
		config:  filepath.Join("..", "testdata", caddyfile),
		admin:   "127.0.0.1:" + adminPort,
		baseURL: "http://127.0.0.1:" + httpPort,
		logs:    &syncBuffer{},
	}
	s.env = append(os.Environ(), "HTTP_PORT="+httpPort, "ADMIN_PORT="+adminPort, "XDG_DATA_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
	s.env = append(s.env, extraEnv...)
	s.cmd = exec.Command(s.binary, "run", "--config", s.config, "--adapter", "caddyfile")
	s.cmd.Env = s.env
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start caddy: %v", err)
	}
	t.Cleanup(s.stop)
	s.waitReady()
	return s
}

func (s *caddyServer) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for backoff := 5 * time.Millisecond; ; backoff = min(2*backoff, 200*time.Millisecond) {
		resp, err := http.Get("http://" + s.admin + "/config/")
		if err == nil {
			resp.Body.Close()
			if conn, err := net.Dial("tcp", strings.TrimPrefix(s.baseURL, "http://")); err == nil {
				conn.Close()
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("caddy did not become ready:\n%s", s.logs.String())
		}
		time.Sleep(backoff) // polling for readiness of another process
	}
}

// httpsBaseURL waits until Caddy completes a TLS handshake on its port and
// returns the https:// base URL. Caddy listens before it has a certificate
// from its internal CA, and until then answers handshakes with an alert.
func (s *caddyServer) httpsBaseURL() string {
	s.t.Helper()
	addr := strings.TrimPrefix(s.baseURL, "http://")
	deadline := time.Now().Add(30 * time.Second)
	for backoff := 5 * time.Millisecond; ; backoff = min(2*backoff, 200*time.Millisecond) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
			return "https://" + addr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("caddy has no certificate: %v\n%s", err, s.logs.String())
		}
		time.Sleep(backoff) // polling for readiness of another process
	}
}

// reload asks the running Caddy to load its Caddyfile again, as an operator
// would with `caddy reload`.
func (s *caddyServer) reload(extraEnv ...string) {
	s.t.Helper()
	cmd := exec.Command(s.binary, "reload", "--config", s.config, "--adapter", "caddyfile", "--address", s.admin, "--force")
	cmd.Env = append(append([]string(nil), s.env...), extraEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("caddy reload: %v\n%s", err, out)
	}
}

func (s *caddyServer) pid() int { return s.cmd.Process.Pid }

func (s *caddyServer) stop() {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
		s.t.Errorf("caddy did not exit on SIGTERM:\n%s", s.logs.String())
	}
	// Built with GOFLAGS=-race, Caddy reports races on its stderr.
	if strings.Contains(s.logs.String(), "WARNING: DATA RACE") {
		s.t.Errorf("caddy reported a data race")
	}
	if s.t.Failed() {
		s.t.Logf("caddy log:\n%s", s.logs.String())
	}
}

// freePort returns a loopback port that nothing listens on and that no
// earlier call in this process returned.
func freePort(t testing.TB) string {
	t.Helper()
	portsGiven.Lock()
	defer portsGiven.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		// The kernel may hand a closed port out again at once: a Caddy
		// given the same port for its admin endpoint and its site would
		// answer the tests from the wrong one.
		if !portsGiven.ports[port] {
			portsGiven.ports[port] = true
			return strconv.Itoa(port)
		}
	}
}

// portsGiven holds the ports freePort has handed out in this process.
var portsGiven = struct {
	sync.Mutex
	ports map[int]bool
}{ports: make(map[int]bool)}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ---- HTTP helpers shared by the integration tests ----

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url string, body io.Reader, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// publishText publishes like a careful backend: with an Idempotency-Key,
// retried on connection errors (a reload closes idle keep-alive
// connections), so a retry is never stored twice.
func publishText(t *testing.T, base, channel, text string) string {
	t.Helper()
	key := fmt.Sprintf("test-%d", publishKeys.Add(1))
	for attempt := 1; ; attempt++ {
		req, _ := http.NewRequest("POST", base+"/comet/pub/"+channel, strings.NewReader(text))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if attempt < 3 {
				continue
			}
			t.Fatalf("publish to %s: %v", channel, err)
		}
		body, err := readAll(resp)
		if err != nil {
			t.Fatalf("publish to %s: %v", channel, err)
		}
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusAccepted {
			t.Fatalf("publish to %s: %d %s", channel, resp.StatusCode, body)
		}
		return jsonField(t, body, "id")
	}
}

var publishKeys atomic.Int64

// openStream starts a streaming subscribe request and returns its body.
func openStream(t *testing.T, ctx context.Context, url string, header ...string) *http.Response {
	t.Helper()
	resp, err := tryStream(ctx, url, header...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// tryStream starts a streaming subscribe request, reporting any failure.
func tryStream(ctx context.Context, url string, header ...string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return resp, nil
}

func readAll(resp *http.Response) (string, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// eachDeliveryPath runs a test against HTTP/1.1 subscribers held by the
// direct path (hijacked sockets, shared writers) and by the handler path
// (a request goroutine each), since both serve SSE, NDJSON and WebSocket.
func eachDeliveryPath(t *testing.T, test func(t *testing.T, direct string)) {
	for _, path := range []string{"on", "off"} {
		t.Run("direct_delivery="+path, func(t *testing.T) { test(t, path) })
	}
}
