package caddymodule_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestMetricsCountWhatHappened reads Caddy's Prometheus endpoint after a
// subscribe, a publish and a refused publish.
func TestMetricsCountWhatHappened(t *testing.T) {
	srv := startCaddy(t, "core.Caddyfile", "UPSTREAM_PORT=1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	events := newSSEReader(openStream(t, ctx, srv.baseURL+"/comet/sub/metered", "Accept", "text/event-stream").Body)
	publishText(t, srv.baseURL, "metered", "one")
	if _, err := events.next(); err != nil {
		t.Fatal(err)
	}
	do(t, "POST", srv.baseURL+"/keyed/pub/metered", strings.NewReader("x"))

	metrics := do(t, "GET", "http://"+srv.admin+"/metrics", nil).body
	for _, want := range []string{
		`caddy_comet_subscribers{hub="default",transport="sse"} 1`,
		`caddy_comet_published_total{hub="default"} 1`,
		`caddy_comet_deliveries_total{hub="default"} 1`,
		`caddy_comet_auth_denials_total{hub="keyed",role="publish"} 1`,
		`caddy_comet_slow_consumer_drops_total{hub="default"} 0`,
		`caddy_comet_delivery_lag_seconds{hub="default"} `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
