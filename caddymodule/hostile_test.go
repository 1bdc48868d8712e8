package caddymodule_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHostileInputGetsClearAnswers sends what an attacker would try; each
// gets a clear answer and the hub keeps serving.
func TestHostileInputGetsClearAnswers(t *testing.T) {
	srv := startCaddy(t, "core.Caddyfile", "UPSTREAM_PORT=1")
	base := srv.baseURL

	t.Run("a message cannot inject SSE fields", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		events := newSSEReader(openStream(t, ctx, base+"/comet/sub/inject", "Accept", "text/event-stream").Body)
		evil := "hello\n\ndata: {\"id\":\"x-1\"}\nid: 999999\nevent: comet.reset\r\n\r\n"
		publishText(t, base, "inject", evil)
		publishText(t, base, "inject", "next")
		first, err := events.next()
		if err != nil {
			t.Fatal(err)
		}
		e := decodeEnvelope(t, first.data)
		var text string
		jsonUnmarshal(t, e.Data, &text)
		if text != evil || first.event != "" || first.id != e.ID {
			t.Fatalf("injected: event %+v, data %q", first, text)
		}
		second, _ := events.next()
		if !strings.Contains(second.data, `"next"`) {
			t.Fatalf("the next event is not the next message: %+v", second)
		}
	})

	cases := []struct {
		name, method, path, contentType, body string
		status                                int
	}{
		{"deeply nested JSON", "POST", "/comet/pub/deep", "application/json", strings.Repeat("[", 100000) + strings.Repeat("]", 100000), 400},
		{"deeply nested JSON batch", "POST", "/comet/pub", "application/json", `[{"channel":"deep","data":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}]`, 400},
		{"billion laughs", "POST", "/comet/pub", "application/xml", `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><message channel="deep">&lol2;</message>`, 400},
		{"external entity", "POST", "/comet/pub", "application/xml", `<?xml version="1.0"?><!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><message channel="deep">&xxe;</message>`, 400},
		{"invalid UTF-8 in a JSON batch", "POST", "/comet/pub", "application/json", "[{\"channel\":\"deep\",\"data\":\"\xff\"}]", 400},
		{"channel name with %2F..%2F", "POST", "/comet/pub/a%2F..%2Fb", "text/plain", "x", 400},
		{"10 KB channel name", "GET", "/comet/sub/" + strings.Repeat("a", 10<<10) + "?wait=0", "", "", 400},
		{"thousands of channels in one subscribe", "GET", "/comet/sub/" + manyChannels(2000) + "?wait=0", "", "", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := doRaw(t, base, tc.method, tc.path, tc.body, "Content-Type", tc.contentType)
			if r.status != tc.status {
				t.Fatalf("want %d, got %d %.200s", tc.status, r.status, r.body)
			}
		})
	}
	if r := do(t, "GET", base+"/comet/pub/deep", nil); r.status != http.StatusNotFound {
		t.Errorf("something was stored on channel deep: %s", r.body)
	}

	t.Run("headers of absurd size", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		go func() {
			fmt.Fprintf(conn, "GET /comet/sub/x?wait=0 HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("b", 2<<20))
		}()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("2 MiB header: %d", resp.StatusCode)
		}
	})
	publishText(t, base, "after", "the hub still serves")
}

// TestNeverReadingSubscriberIsCutAndMemoryStaysBounded holds a subscriber
// that reads nothing while 64 MiB are published to its channel: it must be
// cut as a slow consumer, and the server's memory must not follow what was
// published.
func TestNeverReadingSubscriberIsCutAndMemoryStaysBounded(t *testing.T) {
	eachDeliveryPath(t, neverReadingSubscriberIsCut)
}

func neverReadingSubscriberIsCut(t *testing.T, path string) {
	srv := startCaddy(t, "core.Caddyfile", "UPSTREAM_PORT=1", "DIRECT="+path)
	openUnreadSSE(t, srv, "stall", 128<<10)
	before := rssKiBOf(t, srv.pid())
	payload := strings.Repeat("z", 512<<10)
	cut := false
	for i := 0; i < 128; i++ {
		r := do(t, "POST", srv.baseURL+"/comet/pub/stall", strings.NewReader(payload), "Content-Type", "text/plain")
		if r.status == http.StatusAccepted { // no subscriber left: it was cut
			cut = true
			break
		}
	}
	after := rssKiBOf(t, srv.pid())
	t.Logf("never-reading subscriber: server RSS %d KiB -> %d KiB while up to 64 MiB were published", before, after)
	if !cut {
		t.Fatal("the subscriber that never reads was not cut")
	}
	// The buffer keeps 50 messages of 512 KiB (25 MiB); anything near the
	// 64 MiB published would mean the stalled subscriber holds copies.
	if growth := after - before; growth > 48<<10 {
		t.Fatalf("server memory grew by %d KiB", growth)
	}
}

func manyChannels(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("c%d", i)
	}
	return strings.Join(names, ",")
}

// TestStalledSubscriberIsCutAfterWriteTimeout holds a subscriber that stops
// reading once its socket buffers are full, while what waits for it stays
// under the queue limits: no slow-consumer cut comes, and no further
// message either. write_timeout must cut it anyway, or it would hold its
// descriptor and backlog for as long as its peer keeps the window shut.
func TestStalledSubscriberIsCutAfterWriteTimeout(t *testing.T) {
	eachDeliveryPath(t, stalledSubscriberIsCut)
}

func stalledSubscriberIsCut(t *testing.T, path string) {
	// queue_bytes is raised so that only the write timeout can cut it.
	srv := startCaddy(t, "core.Caddyfile", "UPSTREAM_PORT=1", "DIRECT="+path, "WRITE_TIMEOUT=300ms", "QUEUE_BYTES=64MiB")
	openUnreadSSE(t, srv, "stalled", 64<<10)
	// 8 MiB: more than the socket buffers of a reader that stopped take
	// (up to tcp_wmem's 4 MiB on the server's side), so some waits in
	// the server, well under queue_bytes.
	payload := strings.Repeat("s", 512<<10)
	for i := range 16 {
		r := do(t, "POST", srv.baseURL+"/comet/pub/stalled", strings.NewReader(payload), "Content-Type", "text/plain")
		if i == 0 && r.status != http.StatusCreated {
			t.Fatalf("first publish: want 201 (one subscriber), got %d %s", r.status, r.body)
		}
	}
	waitUntilUnsubscribed(t, srv.baseURL, "stalled", "the stalled subscriber")
}

// waitUntilUnsubscribed polls a channel until it counts no subscriber, and
// fails if who is still counted 10 s later.
func waitUntilUnsubscribed(t *testing.T, base, channel, who string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for subscribers(t, base, channel) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s is still counted 10 s later", who)
		}
		time.Sleep(50 * time.Millisecond) // polling an outcome, not waiting for one
	}
}

// subscribers reads a channel's subscriber count from its info.
func subscribers(t *testing.T, base, channel string) int {
	t.Helper()
	r := do(t, "GET", base+"/comet/pub/"+channel, nil)
	var info struct {
		Subscribers int `json:"subscribers"`
	}
	if err := json.Unmarshal([]byte(r.body), &info); err != nil {
		t.Fatalf("channel info: %d %s: %v", r.status, r.body, err)
	}
	return info.Subscribers
}

// openUnreadSSE subscribes over a raw socket with a small receive buffer
// and reads nothing after the status line: a client that stopped reading.
// The socket is closed when the test ends.
func openUnreadSSE(t *testing.T, srv *caddyServer, channel string, readBuffer int) {
	t.Helper()
	addr := strings.TrimPrefix(srv.baseURL, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.(*net.TCPConn).SetReadBuffer(readBuffer)
	fmt.Fprintf(conn, "GET /comet/sub/%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", channel, addr)
	head := make([]byte, 12)
	if _, err := io.ReadFull(conn, head); err != nil || string(head[9:12]) != "200" {
		t.Fatalf("subscribe: %q %v", head, err)
	}
}
