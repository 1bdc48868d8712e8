package caddymodule_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestHeldFloorHoldsEveryStream guards the floor BenchmarkHTTP2Subscribers
// measures comet and the baseline against: every subscribe over HTTP/2 is
// answered as an SSE stream and then held by its handler, so the floor's
// memory is that of held streams and not of requests already over.
func TestHeldFloorHoldsEveryStream(t *testing.T) {
	const streams = 5
	srv := startServer(t, naiveCaddyBinary(t), "floor-tls.Caddyfile")
	base := srv.httpsBaseURL()
	client := http2Client()
	defer client.CloseIdleConnections()
	for range streams {
		resp := subscribeHTTP2(t, client, context.Background(), base+"/comet/sub/floor")
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("subscribe: %s over %s, Content-Type %q; want 200 over HTTP/2, text/event-stream",
				resp.Status, resp.Proto, resp.Header.Get("Content-Type"))
		}
		if !readUntil(t, bufio.NewReader(resp.Body), ": ok\n") {
			t.Fatal("subscribe: stream ended before \": ok\"")
		}
	}

	// Every stream's handler is still running: its goroutine's stack
	// holds the handler.
	resp, err := http.Get("http://" + srv.admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	dump, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	// debug=1 groups identical stacks under a "N @ 0x..." line; count the
	// goroutines of the groups that show the handler.
	held := 0
	for group := range strings.SplitSeq(string(dump), "\n\n") {
		if !strings.Contains(group, "heldfloor.Handler.ServeHTTP") {
			continue
		}
		for line := range strings.SplitSeq(group, "\n") {
			if count, _, ok := strings.Cut(line, " @ 0x"); ok {
				n, _ := strconv.Atoi(count)
				held += n
				break
			}
		}
	}
	if held != streams {
		t.Fatalf("%d held_floor handlers running, want %d", held, streams)
	}
}
