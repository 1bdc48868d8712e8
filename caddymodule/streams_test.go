package caddymodule_test

import (
	"bufio"
	"context"
	"strings"
	"testing"
	"time"
)

// TestQuietStreamsGetHeartbeats holds an SSE and an NDJSON stream on a
// channel nobody publishes to: each gets its heartbeat (heartbeat 1s in
// core.Caddyfile), so clients and proxies can tell a quiet stream from a
// dead one.
func TestQuietStreamsGetHeartbeats(t *testing.T) {
	eachDeliveryPath(t, func(t *testing.T, path string) {
		srv := startCaddy(t, "core.Caddyfile", "UPSTREAM_PORT=1", "DIRECT="+path)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		sse := bufio.NewReader(openStream(t, ctx, srv.baseURL+"/comet/sub/quiet", "Accept", "text/event-stream").Body)
		if !readUntil(t, sse, ": heartbeat\n") {
			t.Fatal("no SSE heartbeat")
		}
		stream := bufio.NewReader(openStream(t, ctx, srv.baseURL+"/comet/sub/quiet?transport=stream").Body)
		line, err := stream.ReadString('\n')
		if err != nil || line != "\n" {
			t.Fatalf("NDJSON heartbeat: %q %v", line, err)
		}
	})
}

// TestNDJSONStreamEndsAfterStreamMaxBytes publishes past stream_max_bytes
// (STREAM_MAX_BYTES, 64 KiB here): the stream ends with comet.reconnect, and
// a client coming back with its cursor continues where it was.
func TestNDJSONStreamEndsAfterStreamMaxBytes(t *testing.T) {
	eachDeliveryPath(t, func(t *testing.T, path string) {
		srv := startCaddy(t, "core.Caddyfile", "UPSTREAM_PORT=1", "DIRECT="+path, "STREAM_MAX_BYTES=64KiB")
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		lines := newNDJSONReader(openStream(t, ctx, srv.baseURL+"/comet/sub/big?transport=stream").Body)
		payload := strings.Repeat("p", 4000)
		var published []string
		for range 40 { // 160 KB in all
			published = append(published, publishText(t, srv.baseURL, "big", payload))
		}
		var got []string
		for {
			line, err := lines.next()
			if err != nil {
				t.Fatalf("stream ended without comet.reconnect after %d messages: %v", len(got), err)
			}
			e := decodeEnvelope(t, line)
			if e.Event == "comet.reconnect" {
				break
			}
			got = append(got, e.ID)
		}
		if len(got) < 16 || len(got) >= 40 {
			t.Fatalf("%d messages before the end; want the stream cut after about 64 KiB", len(got))
		}
		rest := decodeLongPoll(t, do(t, "GET", srv.baseURL+"/comet/sub/big?wait=0&last_id="+got[len(got)-1], nil).body)
		resumed := append(got, strings.Split(ids(rest.envelopes(t)), ",")...)
		if strings.Join(resumed, ",") != strings.Join(published, ",") {
			t.Fatal("resuming after the cut does not continue where the stream ended")
		}
	})
}

func readUntil(t *testing.T, r *bufio.Reader, want string) bool {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return false
		}
		if line == want {
			return true
		}
	}
}
