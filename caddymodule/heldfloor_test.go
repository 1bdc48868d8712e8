package caddymodule_test

import (
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
		holdSSEOverHTTP2(t, client, context.Background(), base+"/comet/sub/floor")
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
		if !strings.Contains(group, "naivefanout.HeldFloor.ServeHTTP") {
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
