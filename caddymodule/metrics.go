package caddymodule

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// hubsCollector exports the running totals of every hub in Caddy's metrics
// registry. The totals live in the hubs, which outlive config reloads, so
// the counters keep counting across them; the collector only reads them.
// One collector serves all hubs: Prometheus refuses two collectors that
// describe the same metrics.
type hubsCollector struct{}

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
	deliveryLagDesc = prometheus.NewDesc("caddy_comet_delivery_lag_seconds",
		"How long the newest message handed to subscribers had waited since it was published: with Redis, the feed's delay between nodes.", []string{"hub"}, nil)
)

func (hubsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{subscribersDesc, channelsDesc, publishedDesc, deliveriesDesc, slowDesc, deniedDesc, storeErrorsDesc, deliveryLagDesc} {
		ch <- d
	}
}

func (hubsCollector) Collect(ch chan<- prometheus.Metric) {
	hubs.Range(func(key, value any) bool {
		collectHub(ch, key.(string), value.(*pooledHub))
		return true
	})
}

func collectHub(ch chan<- prometheus.Metric, name string, pooled *pooledHub) {
	st := pooled.hub.Stats()
	for transport, n := range st.Subscribers {
		ch <- prometheus.MustNewConstMetric(subscribersDesc, prometheus.GaugeValue, float64(n), name, transport)
	}
	ch <- prometheus.MustNewConstMetric(channelsDesc, prometheus.GaugeValue, float64(st.Channels), name)
	ch <- prometheus.MustNewConstMetric(publishedDesc, prometheus.CounterValue, float64(st.Published), name)
	ch <- prometheus.MustNewConstMetric(deliveriesDesc, prometheus.CounterValue, float64(st.Deliveries), name)
	ch <- prometheus.MustNewConstMetric(slowDesc, prometheus.CounterValue, float64(st.SlowConsumers), name)
	ch <- prometheus.MustNewConstMetric(deniedDesc, prometheus.CounterValue, float64(pooled.counters.PublishDenied.Load()), name, "publish")
	ch <- prometheus.MustNewConstMetric(deniedDesc, prometheus.CounterValue, float64(pooled.counters.SubscribeDenied.Load()), name, "subscribe")
	ch <- prometheus.MustNewConstMetric(storeErrorsDesc, prometheus.CounterValue, float64(st.StoreErrors), name)
	ch <- prometheus.MustNewConstMetric(deliveryLagDesc, prometheus.GaugeValue, st.DeliveryLag.Seconds(), name)
}

// registerMetrics adds the hubs' collector to a config's registry, once.
func registerMetrics(registry *prometheus.Registry) {
	if registry == nil {
		return
	}
	err := registry.Register(hubsCollector{})
	var already prometheus.AlreadyRegisteredError
	if err != nil && !errors.As(err, &already) {
		// Only a malformed descriptor fails otherwise: a bug, not input.
		panic(err)
	}
}
