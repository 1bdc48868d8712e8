package caddymodule

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// hubCollector exports a hub's running totals in Caddy's metrics registry.
// The totals live in the hub, which outlives config reloads, so the
// counters keep counting across them; the collector only reads them.
type hubCollector struct {
	name string
	hub  *pooledHub
}

var (
	subscribersDesc = prometheus.NewDesc("caddy_comet_subscribers",
		"Subscribers currently held, by transport.", []string{"hub", "transport"}, nil)
	channelsDesc = prometheus.NewDesc("caddy_comet_channels",
		"Channels with at least one subscriber.", []string{"hub"}, nil)
	publishedDesc = prometheus.NewDesc("caddy_comet_published_total",
		"Messages published and stored.", []string{"hub"}, nil)
	deliveriesDesc = prometheus.NewDesc("caddy_comet_deliveries_total",
		"Messages handed to subscribers.", []string{"hub"}, nil)
	slowDesc = prometheus.NewDesc("caddy_comet_slow_consumer_drops_total",
		"Subscribers disconnected because their queue was full.", []string{"hub"}, nil)
	deniedDesc = prometheus.NewDesc("caddy_comet_auth_denials_total",
		"Requests refused by publish or subscribe authorization.", []string{"hub", "role"}, nil)
	storeErrorsDesc = prometheus.NewDesc("caddy_comet_store_errors_total",
		"Store operations that failed.", []string{"hub"}, nil)
)

func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{subscribersDesc, channelsDesc, publishedDesc, deliveriesDesc, slowDesc, deniedDesc, storeErrorsDesc} {
		ch <- d
	}
}

func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.hub.hub.Stats()
	for transport, n := range st.Subscribers {
		ch <- prometheus.MustNewConstMetric(subscribersDesc, prometheus.GaugeValue, float64(n), c.name, transport)
	}
	ch <- prometheus.MustNewConstMetric(channelsDesc, prometheus.GaugeValue, float64(st.Channels), c.name)
	ch <- prometheus.MustNewConstMetric(publishedDesc, prometheus.CounterValue, float64(st.Published), c.name)
	ch <- prometheus.MustNewConstMetric(deliveriesDesc, prometheus.CounterValue, float64(st.Deliveries), c.name)
	ch <- prometheus.MustNewConstMetric(slowDesc, prometheus.CounterValue, float64(st.SlowConsumers), c.name)
	ch <- prometheus.MustNewConstMetric(deniedDesc, prometheus.CounterValue, float64(c.hub.counters.PublishDenied.Load()), c.name, "publish")
	ch <- prometheus.MustNewConstMetric(deniedDesc, prometheus.CounterValue, float64(c.hub.counters.SubscribeDenied.Load()), c.name, "subscribe")
	ch <- prometheus.MustNewConstMetric(storeErrorsDesc, prometheus.CounterValue, float64(st.StoreErrors), c.name)
}

// registerMetrics adds the hub's collector to a config's registry. Several
// handlers may share a hub; the registry keeps one collector per hub name.
func registerMetrics(registry *prometheus.Registry, name string, hub *pooledHub) {
	if registry == nil {
		return
	}
	err := registry.Register(&hubCollector{name: name, hub: hub})
	var already prometheus.AlreadyRegisteredError
	if err != nil && !errors.As(err, &already) {
		// Only a malformed descriptor fails otherwise: a bug, not input.
		panic(err)
	}
}
