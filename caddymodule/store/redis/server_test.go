package redis

import (
	"testing"

	"github.com/cometbox/cometbox/caddymodule/internal/redistest"
)

// redisServer is the real redis-server a test runs its store against,
// started and stopped by redistest, which the Caddy nodes' tests share.
// The unexported methods let this package's tests read as before and serve
// as method values in their tables of faults; t marks each one a helper, so
// a failure names the test's line, not this file's.
type redisServer struct {
	*redistest.Server
	t testing.TB
}

// startRedis starts a server with extra command-line arguments that
// override the defaults.
func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	return &redisServer{redistest.Start(t, extra...), t}
}

// newRedisServer picks a port and a data directory but starts nothing yet:
// a store can then be pointed at a Redis that is not there.
func newRedisServer(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	return &redisServer{redistest.New(t, extra...), t}
}

func freePort(t testing.TB) int {
	t.Helper()
	return redistest.FreePort(t)
}

func (srv *redisServer) addr() string { return srv.Addr() }
func (srv *redisServer) url() string  { return srv.URL() }
func (srv *redisServer) kill()        { srv.Kill() }

func (srv *redisServer) start()        { srv.t.Helper(); srv.Start() }
func (srv *redisServer) shutdownSave() { srv.t.Helper(); srv.ShutdownSave() }

// pause and resume freeze and thaw the process: Redis is there but answers
// nothing, as on a hung host.
func (srv *redisServer) pause()  { srv.t.Helper(); srv.Freeze() }
func (srv *redisServer) resume() { srv.t.Helper(); srv.Thaw() }

func (srv *redisServer) do(args ...any) any { srv.t.Helper(); return srv.Do(args...) }
