package caddymodule_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const tokenKey = "t0ps3cret-key"

// mintToken signs a token the way the PHP publisher does.
func mintToken(t *testing.T, alg, key string, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	payload, _ := json.Marshal(claims)
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}

func startSecureCaddy(t *testing.T, app http.Handler) *caddyServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if app == nil {
		app = http.NotFoundHandler()
	}
	srv := &http.Server{Handler: app}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return startCaddy(t, "secure.Caddyfile", fmt.Sprintf("APP_PORT=%d", l.Addr().(*net.TCPAddr).Port))
}

func TestTokensGrantOnlyTheirChannels(t *testing.T) {
	srv := startSecureCaddy(t, nil)
	now := time.Now().Unix()
	valid := mintToken(t, "HS256", tokenKey, map[string]any{"channels": []string{"user.1", "team.1.*"}, "exp": now + 600})
	cases := []struct {
		name   string
		path   string
		header []string
		status int
	}{
		{"public channel without a token", "/comet/sub/news.today?wait=0", nil, 200},
		{"private channel without a token", "/comet/sub/user.1?wait=0", nil, 401},
		{"token in Authorization", "/comet/sub/user.1?wait=0", []string{"Authorization", "Bearer " + valid}, 200},
		{"token in the query", "/comet/sub/user.1,team.1.chat?wait=0&token=" + valid, nil, 200},
		{"token in the cookie", "/comet/sub/team.1.x?wait=0", []string{"Cookie", "comet_token=" + valid}, 200},
		{"public and granted together", "/comet/sub/lobby,user.1?wait=0&token=" + valid, nil, 200},
		{"another user's channel", "/comet/sub/user.2?wait=0&token=" + valid, nil, 403},
		{"one forbidden channel among granted ones", "/comet/sub/user.1,user.2?wait=0&token=" + valid, nil, 403},
		{"alg none", "/comet/sub/user.1?wait=0&token=" + noneToken(now), nil, 401},
		{"another algorithm", "/comet/sub/user.1?wait=0&token=" + mintToken(t, "HS512", tokenKey, map[string]any{"channels": []string{"*"}, "exp": now + 600}), nil, 401},
		{"wrong key", "/comet/sub/user.1?wait=0&token=" + mintToken(t, "HS256", "guess", map[string]any{"channels": []string{"*"}, "exp": now + 600}), nil, 401},
		{"expired beyond the leeway", "/comet/sub/user.1?wait=0&token=" + mintToken(t, "HS256", tokenKey, map[string]any{"channels": []string{"*"}, "exp": now - 120}), nil, 401},
		{"not valid yet", "/comet/sub/user.1?wait=0&token=" + mintToken(t, "HS256", tokenKey, map[string]any{"channels": []string{"*"}, "exp": now + 600, "nbf": now + 300}), nil, 401},
		{"no exp claim", "/comet/sub/user.1?wait=0&token=" + mintToken(t, "HS256", tokenKey, map[string]any{"channels": []string{"*"}}), nil, 401},
		{"garbage", "/comet/sub/user.1?wait=0&token=a.b.c", nil, 401},
		{"WebSocket upgrade is checked too", "/comet/sub/user.2?token=" + valid, []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, "GET", srv.baseURL+tc.path, nil, tc.header...)
			if r.status != tc.status {
				t.Fatalf("want %d, got %d %s", tc.status, r.status, r.body)
			}
			if tc.status != 200 && jsonField(t, r.body, "error") == "" {
				t.Errorf("no reason given: %s", r.body)
			}
		})
	}
	// A WebSocket subscribe at runtime goes through the same check.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := mustDialWS(t, ctx, srv.baseURL+"/comet/sub/lobby?token="+valid)
	c.expect("comet.subscribed:lobby")
	c.send(`{"op":"subscribe","channel":"user.2"}`)
	if e := c.expect("comet.error:")[0]; !strings.Contains(string(e.Data), `"status":403`) {
		t.Fatalf("runtime subscribe to another user's channel: %s", e.Data)
	}
	c.send(`{"op":"subscribe","channel":"user.1"}`)
	c.expect("comet.subscribed:user.1")
}

func noneToken(now int64) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		enc.EncodeToString([]byte(fmt.Sprintf(`{"channels":["*"],"exp":%d}`, now+600))) + "."
}

func TestExpiringTokenEndsTheSubscriptionAtExpiry(t *testing.T) {
	srv := startSecureCaddy(t, nil)
	// exp 29 s ago is still inside the 30 s leeway: valid for about a second.
	token := mintToken(t, "HS256", tokenKey, map[string]any{"channels": []string{"user.9"}, "exp": time.Now().Unix() - 29})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	events := newSSEReader(openStream(t, ctx, srv.baseURL+"/comet/sub/user.9?token="+token, "Accept", "text/event-stream").Body)
	expectExpiryNotice(t, events)
}

// expectExpiryNotice reads an SSE stream until its comet.reconnect notice,
// which must say that the authorization expired, and then its end.
func expectExpiryNotice(t *testing.T, events *sseReader) {
	t.Helper()
	for {
		ev, err := events.next()
		if err != nil {
			t.Fatalf("stream ended without a notice: %v", err)
		}
		if ev.event == "comet.reconnect" {
			if !strings.Contains(ev.data, "authorization expired") {
				t.Fatalf("notice: %s", ev.data)
			}
			break
		}
	}
	if _, err := events.next(); err == nil {
		t.Fatal("the stream went on after the token expired")
	}
}

// A later, longer grant does not put off the end an earlier one set: a
// WebSocket ends when its first permission does.
func TestAWebSocketEndsAtItsEarliestGrant(t *testing.T) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lifetime := 10 * time.Minute
		if r.URL.Query().Get("channel") == "room.brief" {
			lifetime = 2 * time.Second // whole seconds: ends 1-2 s from now
		}
		w.Header().Set("Comet-Expires", fmt.Sprint(time.Now().Add(lifetime).Unix()))
		w.WriteHeader(http.StatusNoContent)
	})
	srv := startSecureCaddy(t, app)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c := mustDialWS(t, ctx, srv.baseURL+"/app/sub/room.brief")
	c.expect("comet.subscribed:room.brief")
	c.send(`{"op":"subscribe","channel":"room.long"}`)
	c.expect("comet.subscribed:room.long")
	if code := c.closeStatus(); code != 1008 {
		t.Fatalf("after the first grant ended: close %d, want 1008", code)
	}
}

func TestAuthorizeAsksTheAppOncePerSessionAndChannel(t *testing.T) {
	var asked atomic.Int64
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		channel := r.URL.Query().Get("channel")
		session, _ := r.Cookie("PHPSESSID")
		switch {
		case r.Header.Get("Comet-Channel") != channel:
			w.WriteHeader(http.StatusBadRequest)
		case strings.HasPrefix(channel, "pay."):
			w.WriteHeader(http.StatusPaymentRequired)
		case session != nil && channel == "user."+session.Value:
			if strings.HasSuffix(channel, "brief") {
				w.Header().Set("Comet-Expires", fmt.Sprint(time.Now().Add(time.Second).Unix()))
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusForbidden)
		}
	})
	srv := startSecureCaddy(t, app)
	alice := []string{"Cookie", "PHPSESSID=alice"}
	for i := range 3 {
		if r := do(t, "GET", srv.baseURL+"/app/sub/user.alice?wait=0", nil, alice...); r.status != 200 {
			t.Fatalf("alice, poll %d: %d %s", i, r.status, r.body)
		}
	}
	if n := asked.Load(); n != 1 {
		t.Fatalf("the app was asked %d times for three polls of one session and channel; want 1", n)
	}
	if r := do(t, "GET", srv.baseURL+"/app/sub/user.bob?wait=0", nil, alice...); r.status != 403 {
		t.Fatalf("alice on bob's channel: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", srv.baseURL+"/app/sub/pay.premium?wait=0", nil, alice...); r.status != 402 {
		t.Fatalf("the app's own status is passed back: got %d %s", r.status, r.body)
	}
	if r := do(t, "GET", srv.baseURL+"/app/sub/user.alice?wait=0", nil); r.status != 403 {
		t.Fatalf("no session: %d %s", r.status, r.body)
	}
	// An answer with Comet-Expires ends the subscription then.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	brief := []string{"Cookie", "PHPSESSID=brief", "Accept", "text/event-stream"}
	events := newSSEReader(openStream(t, ctx, srv.baseURL+"/app/sub/user.brief", brief...).Body)
	for {
		ev, err := events.next()
		if err != nil {
			t.Fatalf("stream ended without a notice: %v", err)
		}
		if ev.event == "comet.reconnect" && strings.Contains(ev.data, "authorization expired") {
			break
		}
	}
}

func TestCrossOriginSubscribersNeedAnAllowedOrigin(t *testing.T) {
	srv := startSecureCaddy(t, nil)
	allowed := do(t, "GET", srv.baseURL+"/comet/sub/lobby?wait=0", nil, "Origin", "https://partner.example")
	if allowed.header.Get("Access-Control-Allow-Origin") != "https://partner.example" || allowed.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("allowed origin: %v", allowed.header)
	}
	other := do(t, "GET", srv.baseURL+"/comet/sub/lobby?wait=0", nil, "Origin", "https://evil.example")
	if other.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("another origin got CORS headers: %v", other.header)
	}
	pre := do(t, "OPTIONS", srv.baseURL+"/comet/sub/lobby", nil, "Origin", "https://partner.example", "Access-Control-Request-Method", "GET")
	if pre.status != http.StatusNoContent || !strings.Contains(pre.header.Get("Access-Control-Allow-Headers"), "Last-Event-ID") {
		t.Fatalf("preflight: %d %v", pre.status, pre.header)
	}
}

func TestLimitsAnswerClearlyAndTheHubGoesOn(t *testing.T) {
	srv := startSecureCaddy(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// max_subscribers_per_channel 3
	for range 3 {
		openStream(t, ctx, srv.baseURL+"/comet/sub/lobby", "Accept", "text/event-stream")
	}
	if r := do(t, "GET", srv.baseURL+"/comet/sub/lobby?wait=0", nil); r.status != http.StatusTooManyRequests || !strings.Contains(r.body, "max_subscribers_per_channel") {
		t.Fatalf("fourth subscriber: %d %s", r.status, r.body)
	}
	// max_hub_channels 60: channels with history or subscribers.
	status := 0
	for i := 0; i < 70 && status != http.StatusInsufficientStorage; i++ {
		r := do(t, "POST", srv.baseURL+fmt.Sprintf("/comet/pub/news.%d", i), strings.NewReader("x"), "Content-Type", "text/plain")
		status = r.status
	}
	if status != http.StatusInsufficientStorage {
		t.Fatalf("publishing to 70 channels with max_hub_channels 60: last status %d", status)
	}
	// An existing channel still takes messages.
	if r := do(t, "POST", srv.baseURL+"/comet/pub/news.1", strings.NewReader("x"), "Content-Type", "text/plain"); r.status != http.StatusAccepted {
		t.Fatalf("existing channel: %d %s", r.status, r.body)
	}
}

func TestConnectionFloodFromOneAddressIsCapped(t *testing.T) {
	srv := startSecureCaddy(t, nil)
	addr := strings.TrimPrefix(srv.baseURL, "http://")
	before := rssKiBOf(t, srv.pid())
	var held, refused int
	conns := make([]net.Conn, 0, 2000)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 2000; i++ {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		fmt.Fprintf(conn, "GET /comet/sub/news.flood.%d HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", i%20, addr)
		status := make([]byte, 12)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(conn, status); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		switch string(status[9:12]) {
		case "200":
			held++
		case "429":
			refused++
		default:
			t.Fatalf("connection %d: %q", i, status)
		}
	}
	after := rssKiBOf(t, srv.pid())
	t.Logf("connection flood: %d held, %d refused; server RSS %d KiB -> %d KiB", held, refused, before, after)
	if held != 40 || refused != 1960 {
		t.Fatalf("held %d, refused %d; want 40 held (max_connections_per_ip), the rest refused", held, refused)
	}
	// Others are still served.
	publishText(t, srv.baseURL, "news.after", "still here")
}

func TestExpiringTokenClosesTheWebSocketWith1008(t *testing.T) {
	srv := startSecureCaddy(t, nil)
	// exp 29 s ago is still inside the 30 s leeway: valid for about a second.
	token := mintToken(t, "HS256", tokenKey, map[string]any{"channels": []string{"user.9"}, "exp": time.Now().Unix() - 29})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c := mustDialWS(t, ctx, srv.baseURL+"/comet/sub/user.9?token="+token)
	c.expect("comet.subscribed:user.9")
	if code := c.closeStatus(); code != 1008 {
		t.Fatalf("expired token: close %d, want 1008", code)
	}
}
