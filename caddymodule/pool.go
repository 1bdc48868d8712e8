package caddymodule

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/cometbox/cometbox/caddymodule/httpapi"
	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/store"
	"github.com/cometbox/cometbox/caddymodule/store/memory"
	"github.com/cometbox/cometbox/caddymodule/store/redis"
	"github.com/cometbox/cometbox/caddymodule/transport/direct"
)

// hubs holds one hub per name across config reloads: the new config's
// handler loads the hub before the old one releases it, so channels,
// history and subscribers carry over (SPEC §8).
var hubs = caddy.NewUsagePool()

// pooledHub is a hub with what must outlive a single config along with it.
type pooledHub struct {
	hub *hub.Hub
	// store names the store and where it is (the Redis URL), so that a
	// reload that points the same hub elsewhere is refused.
	store       string
	counters    httpapi.Counters
	connections httpapi.ConnectionLimiter
	// direct serves HTTP/1.1 SSE and NDJSON subscribers without a
	// goroutine each; nil where the platform lacks epoll.
	direct *direct.Pool
}

// newPooledHub opens the handler's store and a hub over it.
func (h *Handler) newPooledHub(ctx context.Context, rules store.RetentionFunc) (*pooledHub, error) {
	var st store.Store
	var err error
	switch h.Store {
	case storeRedis:
		quietRedisClient()
		st, err = redis.New(ctx, redis.Options{URL: h.StoreURL, Name: h.Name, Retention: rules, Logger: h.logger.Named("redis")})
	default:
		st, err = memory.New(memory.Options{Retention: rules, MaxChannels: h.MaxHubChannels})
	}
	if err != nil {
		return nil, fmt.Errorf("open %s store: %w", h.Store, err)
	}
	pooled := &pooledHub{hub: h.newHub(st), store: h.storeIdentity()}
	if pool, err := direct.New(); err == nil {
		pooled.direct = pool
	} else {
		h.logger.Info("HTTP/1.1 subscribers stay on their request goroutines", zap.Error(err))
	}
	return pooled, nil
}

func (h *Handler) newHub(st store.Store) *hub.Hub { return hub.New(st, hub.Options{}) }

// storeIdentity names the store a hub runs on, credentials left out.
func (h *Handler) storeIdentity() string {
	if h.Store != storeRedis {
		return h.Store
	}
	if u, err := url.Parse(h.StoreURL); err == nil {
		u.User = nil
		return h.Store + " " + u.String()
	}
	return h.Store
}

// quietRedisClient routes go-redis's own log lines (one per failed dial)
// to nowhere: the store logs an outage once, and its recovery once.
var quietRedisClient = sync.OnceFunc(func() { goredis.SetLogger(discardRedisLog{}) })

type discardRedisLog struct{}

func (discardRedisLog) Printf(context.Context, string, ...any) {}

// Destruct closes the hub when no config holds it any more.
func (p *pooledHub) Destruct() error {
	if p.direct != nil {
		p.direct.Close()
	}
	return p.hub.Close()
}

// retentionRules turns buffer settings into the store's rule: the first
// pattern that matches a channel wins, then the default buffer.
func (h *Handler) retentionRules() (store.RetentionFunc, error) {
	type rule struct {
		pattern   message.Pattern
		retention store.Retention
	}
	rules := make([]rule, 0, len(h.ChannelBuffers))
	for _, b := range h.ChannelBuffers {
		rules = append(rules, rule{message.Pattern(b.Pattern), b.Retention.store()})
	}
	fallback := h.Buffer.store()
	return func(channel string) store.Retention {
		for _, r := range rules {
			if r.pattern.Match(channel) {
				return r.retention
			}
		}
		return fallback
	}, nil
}

func (r Retention) store() store.Retention {
	return store.Retention{Count: r.Count, Age: time.Duration(r.Age)}
}

var _ caddy.Destructor = (*pooledHub)(nil)
