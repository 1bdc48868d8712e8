package caddymodule_test

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsClient is a WebSocket subscriber in a test.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	ctx  context.Context
}

func dialWS(t *testing.T, ctx context.Context, url string, header http.Header) (*wsClient, *http.Response, error) {
	return dialWSWith(t, ctx, url, header, nil)
}

func dialWSWith(t *testing.T, ctx context.Context, url string, header http.Header, client *http.Client) (*wsClient, *http.Response, error) {
	conn, resp, err := websocket.Dial(ctx, strings.Replace(url, "http://", "ws://", 1), &websocket.DialOptions{
		HTTPHeader:      header,
		HTTPClient:      client,
		CompressionMode: websocket.CompressionNoContextTakeover,
	})
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(1 << 20)
	t.Cleanup(func() { conn.CloseNow() })
	return &wsClient{t: t, conn: conn, ctx: ctx}, resp, nil
}

func mustDialWS(t *testing.T, ctx context.Context, url string) *wsClient {
	t.Helper()
	c, _, err := dialWS(t, ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return c
}

// wsEnvelope adds the reply reference to the common envelope.
type wsEnvelope struct {
	envelope
	Ref string `json:"ref"`
}

func (c *wsClient) next() wsEnvelope {
	c.t.Helper()
	typ, data, err := c.conn.Read(c.ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		c.t.Fatalf("frame type %v, want text", typ)
	}
	var e wsEnvelope
	if err := json.Unmarshal(data, &e); err != nil {
		c.t.Fatalf("frame %q: %v", data, err)
	}
	return e
}

func (c *wsClient) send(frame string) {
	c.t.Helper()
	if err := c.conn.Write(c.ctx, websocket.MessageText, []byte(frame)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// expect reads frames and checks each against "event:channel" (messages:
// "channel=data").
func (c *wsClient) expect(want ...string) []wsEnvelope {
	c.t.Helper()
	var got []wsEnvelope
	for _, w := range want {
		e := c.next()
		got = append(got, e)
		if describe(e) != w {
			c.t.Fatalf("frame %d: got %s (%+v), want %s", len(got), describe(e), e, w)
		}
	}
	return got
}

func describe(e wsEnvelope) string {
	if e.ID == "" {
		return e.Event + ":" + e.Channel
	}
	var text string
	json.Unmarshal(e.Data, &text)
	return e.Channel + "=" + text
}

// closeStatus reads until the server closes and returns its close code.
func (c *wsClient) closeStatus() websocket.StatusCode {
	c.t.Helper()
	for {
		_, _, err := c.conn.Read(c.ctx)
		if err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func startWSCaddy(t *testing.T, direct string, backend http.Handler, extraEnv ...string) *caddyServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if backend == nil {
		backend = http.NotFoundHandler()
	}
	srv := &http.Server{Handler: backend}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return startCaddy(t, "ws.Caddyfile", append(extraEnv, "DIRECT="+direct, fmt.Sprintf("BACKEND_PORT=%d", l.Addr().(*net.TCPAddr).Port))...)
}

func TestWebSocketReceivesHistoryLiveAndRuntimeSubscriptions(t *testing.T) {
	eachDeliveryPath(t, func(t *testing.T, direct string) {
		srv := startWSCaddy(t, direct, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		publishText(t, srv.baseURL, "a", "a1")
		b1 := publishText(t, srv.baseURL, "b", "b1")

		c := mustDialWS(t, ctx, srv.baseURL+"/comet/sub/a?last_id=earliest")
		c.expect("comet.subscribed:a", "a=a1")
		publishText(t, srv.baseURL, "a", "a2")
		c.expect("a=a2")

		// Subscribe at runtime, with a cursor: history after it, then live.
		c.send(`{"op":"subscribe","channel":"b","last_id":"earliest","ref":"s1"}`)
		got := c.expect("comet.subscribed:b", "b=b1")
		if got[1].ID != b1 {
			t.Fatalf("replayed %s, want %s", got[1].ID, b1)
		}
		publishText(t, srv.baseURL, "b", "b2")
		c.expect("b=b2")

		// Unsubscribe: a is no longer delivered, b still is.
		c.send(`{"op":"unsubscribe","channel":"a"}`)
		c.expect("comet.unsubscribed:a")
		publishText(t, srv.baseURL, "a", "a3")
		last := publishText(t, srv.baseURL, "b", "b3")
		c.expect("b=b3")

		c.send(`{"op":"ack","last_id":"` + last + `"}`)
		c.send(`{"op":"subscribe","channel":"b"}`) // already held: only confirmed
		c.expect("comet.subscribed:b")
	})
}

func TestWebSocketClientMessagesReachTheBackend(t *testing.T) {
	eachDeliveryPath(t, func(t *testing.T, direct string) {
		type seen struct{ cookie, origin, connID, channels, body string }
		arrived := make(chan seen, 4)
		backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			arrived <- seen{r.Header.Get("Cookie"), r.Header.Get("Origin"), r.Header.Get("Comet-Connection-Id"), r.Header.Get("Comet-Channels"), string(body)}
			if strings.Contains(string(body), "fail") {
				http.Error(w, "no", http.StatusUnprocessableEntity)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"saved":true,"echo":%s}`, body)
		})
		srv := startWSCaddy(t, direct, backend)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()

		header := http.Header{"Cookie": {"PHPSESSID=s3ss10n"}, "Origin": {srv.baseURL}}
		c, _, err := dialWS(t, ctx, srv.baseURL+"/comet/sub/room,user.7", header)
		if err != nil {
			t.Fatal(err)
		}
		c.expect("comet.subscribed:room", "comet.subscribed:user.7")

		c.send(`{"op":"message","ref":"m1","data":{"text":"hi"}}`)
		got := <-arrived
		if got.cookie != "PHPSESSID=s3ss10n" || got.origin != srv.baseURL || len(got.connID) < 16 || got.channels != "room,user.7" && got.channels != "user.7,room" || got.body != `{"text":"hi"}` {
			t.Fatalf("backend saw %+v", got)
		}
		reply := c.expect("comet.reply:")[0]
		if reply.Ref != "m1" || string(reply.Data) != `{"saved":true,"echo":{"text":"hi"}}` {
			t.Fatalf("reply: %+v", reply)
		}

		c.send(`{"op":"message","ref":"m2","data":"fail please"}`)
		<-arrived
		refusal := c.expect("comet.error:")[0]
		if refusal.Ref != "m2" || !strings.Contains(string(refusal.Data), `"status":422`) {
			t.Fatalf("backend refusal: %+v %s", refusal, refusal.Data)
		}
		// Delivery goes on while and after the backend answers.
		publishText(t, srv.baseURL, "room", "still live")
		c.expect("room=still live")
	})
}

func TestWebSocketBadFramesGetClearAnswers(t *testing.T) {
	eachDeliveryPath(t, func(t *testing.T, direct string) {
		srv := startWSCaddy(t, direct, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()

		c := mustDialWS(t, ctx, srv.baseURL+"/comet/sub/ok")
		c.expect("comet.subscribed:ok")
		cases := []struct{ frame, status string }{
			{`{"op":`, `"status":400`},
			{`{"op":"dance"}`, `"status":400`},
			{`{"op":"subscribe","channel":"../etc"}`, `"status":400`},
			{`{"op":"subscribe","channel":"x","last_id":"bogus"}`, `"status":400`},
			{`{"op":"ack","last_id":"nope"}`, `"status":400`},
			{`{"op":"unsubscribe","channel":"never"}`, `"status":404`},
		}
		for _, tc := range cases {
			c.send(tc.frame)
			e := c.expect("comet.error:")[0]
			if !strings.Contains(string(e.Data), tc.status) || !strings.Contains(string(e.Data), `"reason"`) {
				t.Errorf("%s: got %s, want %s with a reason", tc.frame, e.Data, tc.status)
			}
		}
		// The subscription survived every refusal.
		publishText(t, srv.baseURL, "ok", "fine")
		c.expect("ok=fine")

		// A frame over max_body_size closes with 1009, a binary frame with 1003.
		big := mustDialWS(t, ctx, srv.baseURL+"/comet/sub/ok")
		big.send(`{"op":"message","data":"` + strings.Repeat("x", 65*1024) + `"}`)
		if code := big.closeStatus(); code != websocket.StatusMessageTooBig {
			t.Errorf("oversize frame: close %d, want 1009", code)
		}
		bin := mustDialWS(t, ctx, srv.baseURL+"/comet/sub/ok")
		bin.conn.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3})
		if code := bin.closeStatus(); code != websocket.StatusUnsupportedData {
			t.Errorf("binary frame: close %d, want 1003", code)
		}
		// A client message with no backend answering 404 becomes a comet.error.
		c.send(`{"op":"message","ref":"r","data":1}`)
		if e := c.expect("comet.error:")[0]; !strings.Contains(string(e.Data), `"status":404`) || e.Ref != "r" {
			t.Errorf("backend 404: %+v %s", e, e.Data)
		}
	})
}

func TestWebSocketRefusesCrossOriginUpgrades(t *testing.T) {
	eachDeliveryPath(t, func(t *testing.T, direct string) {
		srv := startWSCaddy(t, direct, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cases := []struct {
			origin string
			ok     bool
		}{
			{"", true},                          // not a browser
			{srv.baseURL, true},                 // same origin
			{"https://app.example.com", true},   // allowed_origins
			{"https://evil.example.com", false}, // another site
			{"https://app.example.com.evil", false},
		}
		for _, tc := range cases {
			header := http.Header{}
			if tc.origin != "" {
				header.Set("Origin", tc.origin)
			}
			c, resp, err := dialWS(t, ctx, srv.baseURL+"/comet/sub/x", header)
			if tc.ok {
				if err != nil {
					t.Errorf("origin %q: refused: %v", tc.origin, err)
					continue
				}
				c.conn.CloseNow()
				continue
			}
			if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Errorf("origin %q: want 403, got %v %v", tc.origin, resp, err)
			}
		}
	})
}

func TestWebSocketSlowConsumerIsClosedWith1008(t *testing.T) {
	eachDeliveryPath(t, func(t *testing.T, direct string) {
		srv := startWSCaddy(t, direct, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, _, err := dialWSWith(t, ctx, srv.baseURL+"/comet/sub/flood", nil, smallReadBufferClient())
		if err != nil {
			t.Fatal(err)
		}
		c.expect("comet.subscribed:flood")
		// The client reads nothing while 12 MiB are published: socket buffers
		// fill, then the queue (8), and the server cuts the subscriber.
		// Random text: permessage-deflate must not shrink it away.
		payload := randomText(45 << 10)
		for i := 0; i < 200; i++ {
			publishText(t, srv.baseURL, "flood", payload)
		}
		if code := c.closeStatus(); code != websocket.StatusPolicyViolation {
			t.Fatalf("slow consumer: close %d, want 1008", code)
		}
		info := do(t, "GET", srv.baseURL+"/comet/pub/flood", nil)
		if !strings.Contains(info.body, `"subscribers":0`) {
			t.Fatalf("the cut subscriber is still counted: %s", info.body)
		}
	})
}

// TestWebSocketStalledReaderIsCutAfterWriteTimeout holds a WebSocket whose
// client reads nothing, with a queue too large to fill: only the write
// timeout can free the socket and the subscription once the writer blocks
// (queue_size and queue_bytes are raised out of reach).
func TestWebSocketStalledReaderIsCutAfterWriteTimeout(t *testing.T) {
	eachDeliveryPath(t, func(t *testing.T, direct string) {
		srv := startWSCaddy(t, direct, nil, "QUEUE_SIZE=10000", "QUEUE_BYTES=64MiB", "WRITE_TIMEOUT=300ms")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, _, err := dialWSWith(t, ctx, srv.baseURL+"/comet/sub/stuck", nil, smallReadBufferClient())
		if err != nil {
			t.Fatal(err)
		}
		c.expect("comet.subscribed:stuck")
		// 200 × 48 KiB: more than the socket buffers take (128 KiB here, up
		// to tcp_wmem's 4 MiB on the server's side), so the writer blocks.
		payload := randomText(36 << 10)
		for range 200 {
			publishText(t, srv.baseURL, "stuck", payload)
		}
		waitUntilUnsubscribed(t, srv.baseURL, "stuck", "the stalled WebSocket")
	})
}

func TestWebSocketReloadClosesWith1001AndResumeLosesNothing(t *testing.T) {
	eachDeliveryPath(t, func(t *testing.T, direct string) {
		srv := startWSCaddy(t, direct, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := mustDialWS(t, ctx, srv.baseURL+"/comet/sub/r")
		c.expect("comet.subscribed:r")
		var last string
		for i := range 5 {
			last = publishText(t, srv.baseURL, "r", fmt.Sprint(i))
			c.expect(fmt.Sprintf("r=%d", i))
		}
		srv.reload()
		if code := c.closeStatus(); code != websocket.StatusGoingAway {
			t.Fatalf("reload: close %d, want 1001", code)
		}
		// Published while the client was away.
		for i := 5; i < 8; i++ {
			publishText(t, srv.baseURL, "r", fmt.Sprint(i))
		}
		var again *wsClient
		for attempt := 0; again == nil; attempt++ {
			var err error
			if again, _, err = dialWS(t, ctx, srv.baseURL+"/comet/sub/r?last_id="+last, nil); err != nil && attempt > 5 {
				t.Fatal(err)
			}
		}
		again.expect("comet.subscribed:r", "r=5", "r=6", "r=7")
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatal("timed out")
		}
	})
}

// smallReadBufferClient dials with a small receive buffer, so that a client
// that stops reading fills its socket sooner. Not below the loopback MSS
// (64 KiB), or TCP never reopens its window.
func smallReadBufferClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				conn.(*net.TCPConn).SetReadBuffer(128 << 10)
			}
			return conn, err
		},
	}}
}

// randomText is n random bytes in base64: text that compression cannot
// shrink.
func randomText(n int) string {
	random := make([]byte, n)
	crand.Read(random)
	return base64.StdEncoding.EncodeToString(random)
}

// TestIdleDirectWebSocketsHoldNoGoroutine counts the server's goroutines
// around 200 idle WebSockets: on the direct path they hold none, on the
// handler path a writer and a reader each.
func TestIdleDirectWebSocketsHoldNoGoroutine(t *testing.T) {
	eachDeliveryPath(t, func(t *testing.T, direct string) {
		srv := startWSCaddy(t, direct, nil)
		addr := strings.TrimPrefix(srv.baseURL, "http://")
		openIdleWebSocket(t, addr, "idle.warm").Close()
		before := serverGoroutines(t, srv)
		const sockets = 200
		for i := range sockets {
			defer openIdleWebSocket(t, addr, fmt.Sprintf("idle.%d", i%10)).Close()
		}
		added := serverGoroutines(t, srv) - before
		switch {
		case direct == "on" && added >= sockets/10:
			t.Fatalf("%d idle direct WebSockets added %d goroutines", sockets, added)
		case direct == "off" && added < sockets:
			t.Fatalf("the handler path added only %d goroutines for %d WebSockets: is it the direct path?", added, sockets)
		}
	})
}

// serverGoroutines reads how many goroutines the Caddy process runs, from
// its admin endpoint's profile.
func serverGoroutines(t *testing.T, srv *caddyServer) int {
	t.Helper()
	resp, err := http.Get("http://" + srv.admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var total int
	if _, err := fmt.Fscanf(resp.Body, "goroutine profile: total %d", &total); err != nil {
		t.Fatalf("goroutine profile: %v", err)
	}
	return total
}
