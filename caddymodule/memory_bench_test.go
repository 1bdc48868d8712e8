package caddymodule_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
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
	const subscribers = 10_000
	srv := startCaddy(b, "core.Caddyfile", "UPSTREAM_PORT=1")
	addr := strings.TrimPrefix(srv.baseURL, "http://")
	// One subscriber first, so that lazily built state is not counted.
	warm := openIdleSSE(b, addr, "idle.warm")
	defer warm.Close()
	runtime.GC()
	before := rssKiB(b, srv.pid())

	conns := make([]net.Conn, 0, subscribers)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range subscribers {
		conns = append(conns, openIdleSSE(b, addr, fmt.Sprintf("idle.%d", i%100)))
	}
	after := rssKiB(b, srv.pid())
	b.ReportMetric(float64(after-before)/subscribers, "KiB/subscriber")
	b.ReportMetric(float64(after), "server-RSS-KiB")
}

// openIdleSSE opens one SSE subscription on a raw connection and returns
// once its headers and first comment arrived: the subscriber is registered.
func openIdleSSE(b *testing.B, addr, channel string) net.Conn {
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
