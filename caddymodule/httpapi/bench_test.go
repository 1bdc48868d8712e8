package httpapi_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cometbox/cometbox/caddymodule/httpapi"
	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/store"
	"github.com/cometbox/cometbox/caddymodule/store/memory"
)

func newAPI(tb testing.TB) *httpapi.API {
	tb.Helper()
	st, err := memory.New(memory.Options{Retention: func(string) store.Retention { return store.Retention{Count: 100, Age: time.Hour} }})
	if err != nil {
		tb.Fatal(err)
	}
	h := hub.New(st, hub.Options{QueueLimit: 256})
	tb.Cleanup(func() { h.Close() })
	return &httpapi.API{
		Hub:         h,
		Prefix:      "/comet",
		Publish:     httpapi.PublishPolicy{From: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		MaxBodySize: 1 << 20,
		MaxChannels: 32,
		Logger:      zap.NewNop(),
	}
}

// BenchmarkPublishHTTP publishes 100-byte messages through the handler that
// the Caddy module routes {prefix}/* to: access check, body read,
// validation, store, answer.
func BenchmarkPublishHTTP(b *testing.B) {
	api := newAPI(b)
	body := bytes.Repeat([]byte("x"), 100)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/comet/pub/bench", bytes.NewReader(body))
		req.RemoteAddr = "127.0.0.1:1234"
		req.Header.Set("Content-Type", "text/plain")
		rec := httptest.NewRecorder()
		if err := api.ServeHTTP(rec, req); err != nil || rec.Code != http.StatusAccepted {
			b.Fatalf("publish: %d %v", rec.Code, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
}

// BenchmarkLongPollHTTP answers a long-poll whose cursor is behind, the
// request a polling client repeats: parse, authorize, history, answer.
func BenchmarkLongPollHTTP(b *testing.B) {
	api := newAPI(b)
	publish := httptest.NewRequest("POST", "/comet/pub/bench", strings.NewReader("waiting"))
	publish.RemoteAddr = "127.0.0.1:1234"
	publish.Header.Set("Content-Type", "text/plain")
	if err := api.ServeHTTP(httptest.NewRecorder(), publish); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("GET", "/comet/sub/bench?last_id=earliest&wait=0", nil)
		req.RemoteAddr = "127.0.0.1:1234"
		rec := httptest.NewRecorder()
		if err := api.ServeHTTP(rec, req); err != nil || rec.Code != http.StatusOK {
			b.Fatalf("long-poll: %d %v", rec.Code, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "answers/s")
}
