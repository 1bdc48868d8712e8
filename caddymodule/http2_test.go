package caddymodule_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"net/http"
	"testing"
	"time"
)

// TestHTTP2StreamOutlivesWriteTimeout holds an SSE stream over HTTP/2 with
// a write timeout far shorter than the heartbeat. Each write's deadline
// must end with its flush: over HTTP/2 a deadline left behind resets the
// stream when it expires, even when nothing is being written, so every
// idle subscriber would be cut write_timeout after its last message.
func TestHTTP2StreamOutlivesWriteTimeout(t *testing.T) {
	srv := startCaddy(t, "tls.Caddyfile", "HEARTBEAT=600ms", "WRITE_TIMEOUT=100ms")
	base := srv.httpsBaseURL()
	client := http2Client()
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/comet/sub/idle", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("subscribe: served over %s, want HTTP/2", resp.Proto)
	}
	lines := bufio.NewReader(resp.Body)
	if !readUntil(t, lines, ": ok\n") {
		t.Fatal("stream ended before \": ok\"")
	}
	// Each heartbeat comes after 600 ms of silence, six write timeouts.
	for i := range 3 {
		if !readUntil(t, lines, ": heartbeat\n") {
			t.Fatalf("stream ended before heartbeat %d", i+1)
		}
	}
}

// http2Client speaks HTTP/2 over TLS to a test Caddy, whose certificate
// comes from Caddy's internal CA.
func http2Client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: true,
	}}
}
