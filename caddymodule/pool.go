package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/cometbox/cometbox/caddymodule/httpapi"
	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/store"
	"github.com/cometbox/cometbox/caddymodule/store/memory"
)

// hubs holds one hub per name across config reloads: the new config's
// handler loads the hub before the old one releases it, so channels,
// history and subscribers carry over (SPEC §8).
var hubs = caddy.NewUsagePool()

// pooledHub is a hub with what must outlive a single config along with it.
type pooledHub struct {
	hub         *hub.Hub
	store       string
	counters    httpapi.Counters
	connections httpapi.ConnectionLimiter
}

func newPooledHub(storeName string, rules store.RetentionFunc, maxChannels int) (*pooledHub, error) {
	st, err := memory.New(memory.Options{Retention: rules, MaxChannels: maxChannels})
	if err != nil {
		return nil, fmt.Errorf("open %s store: %w", storeName, err)
	}
	return &pooledHub{hub: hub.New(st, hub.Options{}), store: storeName}, nil
}

// Destruct closes the hub when no config holds it any more.
func (p *pooledHub) Destruct() error { return p.hub.Close() }

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
