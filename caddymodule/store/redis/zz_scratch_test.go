package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cometbox/cometbox/caddymodule/message"
)

func TestScratchStats(t *testing.T) {
	srv := startRedis(t)
	s, _ := newStore(t, srv, storeOptions{})
	for i := 0; i < 300; i++ {
		appendOK(t, s, "", draft("x", "warm"))
	}
	srv.do("CONFIG", "RESETSTAT")
	start := time.Now()
	for i := 0; i < 2000; i++ {
		s.Append(context.Background(), []message.Draft{draft("x", fmt.Sprint(i, " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"))}, "")
	}
	el := time.Since(start)
	t.Logf("per append %v", el/2000)
	t.Log(srv.do("INFO", "commandstats"))
	start = time.Now()
	for i := 0; i < 2000; i++ {
		srv.client().Ping(context.Background())
	}
	t.Logf("per ping (new client each) %v", time.Since(start)/2000)
	c := srv.client()
	start = time.Now()
	for i := 0; i < 2000; i++ {
		c.Ping(context.Background())
	}
	t.Logf("per ping %v", time.Since(start)/2000)
}
