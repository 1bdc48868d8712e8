package caddymodule_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkIdleSSEMemory holds 10,000 idle SSE subscribers on a real Caddy
// over loopback and reports the server's resident memory per subscriber
// (RSS delta / connections). Run it with -benchtime=1x; it is a
// measurement, not a loop.
func BenchmarkIdleSSEMemory(b *testing.B) {
	for _, path := range []string{"direct", "handler"} {
		b.Run("path="+path, func(b *testing.B) {
			direct := map[string]string{"direct": "on", "handler": "off"}[path]
			srv := startCaddy(b, "core.Caddyfile", "DIRECT="+direct, "UPSTREAM_PORT=1", "MAX_CONNS_PER_IP=20000")
			idleMemory(b, srv, openIdleSSE)
		})
	}
}

// BenchmarkIdleWebSocketMemory is the same for WebSocket subscribers.
func BenchmarkIdleWebSocketMemory(b *testing.B) {
	for _, path := range []string{"direct", "handler"} {
		b.Run("path="+path, func(b *testing.B) {
			direct := map[string]string{"direct": "on", "handler": "off"}[path]
			srv := startCaddy(b, "ws.Caddyfile", "DIRECT="+direct, "BACKEND_PORT=1", "MAX_CONNS_PER_IP=20000")
			idleMemory(b, srv, openIdleWebSocket)
		})
	}
}

// BenchmarkWaitingLongPollMemory holds 1,000 long-polls over plain
// HTTP/1.1, each on its own connection and waiting for a message, and
// reports the Go stack and heap each holds in the server (from Caddy's
// /debug/vars), then answers them all with one publish. A waiting
// long-poll keeps its connection's goroutine, so this is the cost of the
// long-poll fallback when messages are rare. Run it with -benchtime=1x.
func BenchmarkWaitingLongPollMemory(b *testing.B) {
	const held = 1000
	srv := startCaddy(b, "core.Caddyfile", "UPSTREAM_PORT=1", "MAX_CONNS_PER_IP=20000")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: held}}
	defer client.CloseIdleConnections()
	serverGC(b, srv)
	stackBefore, heapBefore := serverMemStats(b, srv)
	release := holdLongPolls(b, client, srv.baseURL, "waiting", held, false)
	serverGC(b, srv)
	stackAfter, heapAfter := serverMemStats(b, srv)
	b.ReportMetric(float64(stackAfter-stackBefore)/1024/held, "stack-KiB/poll")
	b.ReportMetric(float64(heapAfter-heapBefore)/1024/held, "heap-KiB/poll")
	release()
}

// idleMemory holds 10,000 subscribers opened by open and reports what
// each costs the server.
func idleMemory(b *testing.B, srv *caddyServer, open func(b testing.TB, addr, channel string) net.Conn) {
	const subscribers = 10_000
	addr := strings.TrimPrefix(srv.baseURL, "http://")
	// One subscriber first, so that lazily built state is not counted.
	warm := open(b, addr, "idle.warm")
	defer warm.Close()
	serverGC(b, srv)
	before := settledRSS(b, srv.pid())

	conns := make([]net.Conn, 0, subscribers)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range subscribers {
		conns = append(conns, open(b, addr, fmt.Sprintf("idle.%d", i%100)))
	}
	// Collect the garbage the 10,000 requests left behind (request objects,
	// the buffers a hijack drops), as a long-running server would have,
	// so that what remains is what the idle subscribers hold.
	serverGC(b, srv)
	after := settledRSS(b, srv.pid())
	b.ReportMetric(float64(after-before)/subscribers, "KiB/subscriber")
	b.ReportMetric(float64(after), "server-RSS-KiB")
}

// serverGC makes the Caddy process collect garbage and return free memory
// to the system, through the admin endpoint's pprof handler (?gc=1 runs a
// collection before the profile) and a second pass for the scavenger.
func serverGC(b testing.TB, srv *caddyServer) {
	for range 2 {
		resp, err := http.Get("http://" + srv.admin + "/debug/pprof/heap?gc=1")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// settledRSS reads the server's RSS once the Go scavenger has returned the
// pages the collection freed: until two readings a quarter second apart
// differ by less than 1%, for at most 10 s. A measurement, not a test.
func settledRSS(b *testing.B, pid int) int64 {
	last := rssKiB(b, pid)
	for range 40 {
		time.Sleep(250 * time.Millisecond)
		now := rssKiB(b, pid)
		if last-now < last/100 {
			return now
		}
		last = now
	}
	return last
}

// openIdleSSE opens one SSE subscription on a raw connection and returns
// once its headers and first comment arrived: the subscriber is registered.
func openIdleSSE(b testing.TB, addr, channel string) net.Conn {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	fmt.Fprintf(conn, "GET /comet/sub/%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", channel, addr)
	r := bufio.NewReaderSize(conn, 512)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			b.Fatalf("read SSE head: %v", err)
		}
		if strings.HasPrefix(line, ": ok") {
			return conn
		}
	}
}

// openIdleWebSocket opens one WebSocket on a raw connection and returns
// once its comet.subscribed notice arrived.
func openIdleWebSocket(b testing.TB, addr, channel string) net.Conn {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	fmt.Fprintf(conn, "GET /comet/sub/%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", channel, addr)
	r := bufio.NewReaderSize(conn, 512)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		b.Fatalf("handshake: %v %v", resp, err)
	}
	var head [2]byte
	if _, err := io.ReadFull(r, head[:]); err != nil || head[1] > 125 {
		b.Fatalf("first frame: %x %v", head, err)
	}
	if _, err := io.ReadFull(r, make([]byte, head[1])); err != nil {
		b.Fatalf("first frame: %v", err)
	}
	return conn
}

func rssKiB(b *testing.B, pid int) int64 { return rssKiBOf(b, pid) }

// rssKiBOf reads a process's resident memory from /proc.
func rssKiBOf(b testing.TB, pid int) int64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
