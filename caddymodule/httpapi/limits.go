package httpapi

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// ConnectionLimiter bounds the subscriber connections held per client
// address, so that one client cannot take every socket of the server. The
// map holds only addresses with a connection open, so it is bounded by the
// connections themselves.
type ConnectionLimiter struct {
	max atomic.Int64

	mu    sync.Mutex
	count map[netip.Addr]int
}

// SetMax changes the limit, as after a reload; 0 is no limit.
func (l *ConnectionLimiter) SetMax(n int) { l.max.Store(int64(n)) }

func (l *ConnectionLimiter) acquire(ip netip.Addr) bool {
	max := int(l.max.Load())
	if max <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count == nil {
		l.count = make(map[netip.Addr]int)
	}
	if l.count[ip] >= max {
		return false
	}
	l.count[ip]++
	return true
}

func (l *ConnectionLimiter) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.count[ip]; !ok {
		return
	}
	if l.count[ip]--; l.count[ip] <= 0 {
		delete(l.count, ip)
	}
}
