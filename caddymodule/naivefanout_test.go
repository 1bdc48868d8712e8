package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestNaiveFanoutDelivers guards the baseline BenchmarkHTTP2Subscribers
// compares comet against: over HTTP/2 with TLS, every subscriber of a
// channel gets every message published to it, in order, multi-line bodies
// included, so the benchmark cannot silently measure a baseline that skips
// its work.
func TestNaiveFanoutDelivers(t *testing.T) {
	const subscribers = 3
	srv := startServer(t, naiveCaddyBinary(t), "naive-tls.Caddyfile")
	base := srv.httpsBaseURL()
	client := http2Client()
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	var streams []*sseReader
	for range subscribers {
		lines := holdSSEOverHTTP2(t, client, ctx, base+"/comet/sub/naive")
		streams = append(streams, &sseReader{lines: lines})
	}

	var published []sseEvent
	for i := range 5 {
		text := fmt.Sprintf("message %d", i)
		if i == 2 {
			text = "first line\nsecond line"
		}
		id := publishNaive(t, ctx, client, base+"/comet/pub/naive", text, subscribers)
		published = append(published, sseEvent{id: id, data: text})
	}
	for s, stream := range streams {
		for _, want := range published {
			got, err := stream.next()
			if err != nil {
				t.Fatalf("subscriber %d: stream ended before message %s: %v", s, want.id, err)
			}
			if got != want {
				t.Fatalf("subscriber %d: got %+v, want %+v", s, got, want)
			}
		}
	}
}

// publishNaive publishes text to the naive server, checks that it answered
// 201 with the number of subscribers expected, and returns the message id.
func publishNaive(t *testing.T, ctx context.Context, client *http.Client, url, text string, subscribers int) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(text))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	body, err := readAll(resp)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish: %d %s", resp.StatusCode, body)
	}
	var answer struct {
		ID          string `json:"id"`
		Subscribers int    `json:"subscribers"`
	}
	jsonUnmarshal(t, []byte(body), &answer)
	if answer.ID == "" || answer.Subscribers != subscribers {
		t.Fatalf("publish answered %s, want an id and %d subscribers", body, subscribers)
	}
	return answer.ID
}
