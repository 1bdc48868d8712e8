package main

import (
	"net"
	"testing"
)

// TestFloorDeliversEveryMessageOnce guards the reference compare.sh runs
// beside the servers: the bare send loop must deliver every message to
// every subscriber, or its figures would be those of a server skipping
// its work.
func TestFloorDeliversEveryMessageOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveFloor(ln)

	const n, m = 30, 25
	g, pr := fanOut(t, "http://"+ln.Addr().String(), transportSSE, n, m)
	if pr.Published != m || pr.Errors != 0 {
		t.Errorf("published %d with %d errors, want %d and none", pr.Published, pr.Errors, m)
	}
	if g.Lost != 0 || g.Dups != 0 || g.Unique != n*m {
		t.Errorf("lost %d, duplicated %d, delivered %d; want 0, 0, %d (errors: %v)", g.Lost, g.Dups, g.Unique, n*m, g.Errors)
	}
}
