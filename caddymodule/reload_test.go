package caddymodule_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestReloadKeepsHistoryAndSubscribersResume reloads Caddy while a publisher
// is publishing and an SSE subscriber is connected. The reload ends the held
// stream with comet.reconnect; the subscriber comes back with its cursor
// and misses nothing, because the hub and its buffers survived the reload.
func TestReloadKeepsHistoryAndSubscribersResume(t *testing.T) {
	eachDeliveryPath(t, reloadKeepsHistory)
}

func reloadKeepsHistory(t *testing.T, path string) {
	srv := startCaddy(t, "core.Caddyfile", "UPSTREAM_PORT=1", "DIRECT="+path)
	const total = 200
	var published []string
	for i := range 20 {
		published = append(published, publishText(t, srv.baseURL, "soak.reload", fmt.Sprint(i)))
	}

	received := make(chan []string, 1)
	reconnects := make(chan string, 10)
	go func() {
		received <- followSSE(t, srv.baseURL, "soak.reload", published[len(published)-1], total-20, reconnects)
	}()

	var reason string
	for i := 20; i < total; i++ {
		switch i {
		case 60:
			srv.reload()
		case 100:
			// Messages 60–99 went out while the old config's stream was
			// closing; wait until it was cut before publishing the rest.
			select {
			case reason = <-reconnects:
			case <-time.After(20 * time.Second):
				t.Fatal("the reload did not end the held stream with comet.reconnect")
			}
		}
		published = append(published, publishText(t, srv.baseURL, "soak.reload", fmt.Sprint(i)))
	}
	if !strings.Contains(reason, "reload") {
		t.Errorf("reconnect notice reason: %s", reason)
	}

	var got []string
	select {
	case got = <-received:
	case <-time.After(30 * time.Second):
		t.Fatal("subscriber did not receive everything")
	}
	if want := strings.Join(published[20:], ","); strings.Join(got, ",") != want {
		t.Fatalf("after reload: got %d ids, want %d in order:\n got  %v\n want %v", len(got), total-20, got, published[20:])
	}
	// The buffer survived: everything is still there from earliest.
	all := decodeLongPoll(t, do(t, "GET", srv.baseURL+"/comet/sub/soak.reload?wait=0&last_id=earliest", nil).body)
	if ids(all.envelopes(t)) != strings.Join(published, ",") {
		t.Fatalf("history after reload has %d messages, want %d", len(all.Messages), len(published))
	}
}

// followSSE reads n messages from a channel, reconnecting with
// Last-Event-ID whenever the stream ends, and reports each reconnect
// notice's data.
func followSSE(t *testing.T, base, channel, cursor string, n int, reconnects chan<- string) []string {
	var got []string
	for attempt := 0; len(got) < n && attempt < 20; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		resp, err := tryStream(ctx, base+"/comet/sub/"+channel, "Accept", "text/event-stream", "Last-Event-ID", cursor)
		if err != nil {
			// A connection accepted by the old server as it shut down
			// ends at once; a client just reconnects.
			cancel()
			continue
		}
		events := newSSEReader(resp.Body)
		for len(got) < n {
			ev, err := events.next()
			if err != nil {
				break
			}
			if ev.event == "comet.reconnect" {
				reconnects <- ev.data
				continue
			}
			e := decodeEnvelope(t, ev.data)
			if e.Event == "comet.reset" {
				t.Errorf("unexpected reset after reconnect from %s", cursor)
				continue
			}
			got = append(got, ev.id)
			cursor = ev.id
		}
		resp.Body.Close()
		cancel()
	}
	return got
}
