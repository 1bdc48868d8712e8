package caddymodule_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The demo chat publishes room messages here (testdata/legacy-app/lib.php).
const legacyRoomChannel = "room.lobby"

// legacyTokenKey is the COMET_TOKEN_KEY the app signs subscribe tokens with.
const legacyTokenKey = "legacy-test-key"

// TestLegacyAppWorksWithoutJavaScript drives the PHP chat in
// testdata/legacy-app behind Caddy the way a browser without JavaScript
// does: log in, post through the form, follow the redirect, read the page.
// A long-poll subscriber started before the post receives what PHP
// published, and a private mention reaches the mentioned user's channel.
func TestLegacyAppWorksWithoutJavaScript(t *testing.T) {
	php := requirePHP(t)
	phpPort := freePort(t)
	srv := startCaddy(t, "legacy.Caddyfile", "PHP_PORT="+phpPort, "COMET_TOKEN_KEY="+legacyTokenKey)
	startLegacyApp(t, php, phpPort, srv.baseURL+"/comet")

	ann := newLegacyBrowser(t, srv.baseURL)
	room := ann.login("ann")
	if !strings.Contains(room.body, `<strong id="me">ann</strong>`) {
		t.Fatalf("room page after login does not name the user:\n%s", room.body)
	}
	if !strings.Contains(room.body, `<script src="/comet/client.js"></script>`) {
		t.Errorf("room page does not load the push client")
	}

	// Subscribe from the hub's head, so the message arrives whether the
	// long-poll registers before or after the publish.
	head := decodeLongPoll(t, do(t, "GET", srv.baseURL+"/comet/sub/"+legacyRoomChannel+"?wait=0", nil).body).LastID
	polled := make(chan legacyFetched, 1)
	go func() {
		polled <- legacyFetch(srv.baseURL + "/comet/sub/" + legacyRoomChannel + "?wait=10&last_id=" + url.QueryEscape(head))
	}()

	text := `hello @bob <script>alert(1)</script> & "friends"`
	after := ann.post("/post.php", url.Values{"text": {text}, "csrf": {legacyCSRFOf(t, room.body)}})
	if after.redirects != 1 || after.path != "/index.php" {
		t.Fatalf("post: want one redirect (Post/Redirect/Get) to /index.php, got %d to %s", after.redirects, after.path)
	}
	escaped := htmlspecialchars(text)
	if !strings.Contains(after.body, escaped) || strings.Contains(after.body, "<script>alert(1)") {
		t.Fatalf("page after the post does not show the message escaped (%q):\n%s", escaped, after.body)
	}
	if strings.Contains(after.body, `class="notice"`) {
		t.Errorf("page after the post shows a notice, so the publish failed:\n%s", after.body)
	}

	got := <-polled
	if got.err != nil || got.status != http.StatusOK {
		t.Fatalf("long-poll: %d %v %s", got.status, got.err, got.body)
	}
	answer := decodeLongPoll(t, got.body)
	if len(answer.Messages) != 1 {
		t.Fatalf("long-poll: want the one message, got %s", got.body)
	}
	e := decodeEnvelope(t, string(answer.Messages[0]))
	var data struct {
		ID   int    `json:"id"`
		User string `json:"user"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(e.Data, &data); err != nil {
		t.Fatalf("envelope data: %v: %s", err, e.Data)
	}
	if e.Channel != legacyRoomChannel || e.Event != "message" || e.Type != "application/json" || data.User != "ann" || data.Text != text {
		t.Errorf("published envelope: %+v data %+v", e, data)
	}
	if !strings.Contains(after.body, fmt.Sprintf(`<li id="m%d">`, data.ID)) {
		t.Errorf("page has no element m%d for the message", data.ID)
	}
	if !strings.Contains(after.body, `data-last-id="`+e.ID+`"`) {
		t.Errorf("page does not hand the client the message's hub id %s as its cursor", e.ID)
	}

	// Bob, without JavaScript, sees the message by loading the page, and
	// his page carries a subscribe token for his own channel only.
	bob := newLegacyBrowser(t, srv.baseURL)
	bobsRoom := bob.login("bob")
	if !strings.Contains(bobsRoom.body, escaped) {
		t.Errorf("bob's page does not show ann's message:\n%s", bobsRoom.body)
	}
	token := checkLegacyToken(t, bobsRoom.body, "user.bob")

	// The mention went to bob's private channel in the same batch, stored
	// before the post was answered; only bob's token opens it.
	mention := decodeLongPoll(t, do(t, "GET", srv.baseURL+"/comet/sub/user.bob?wait=0&last_id="+url.QueryEscape(head)+"&token="+token, nil).body)
	if len(mention.Messages) != 1 || decodeEnvelope(t, string(mention.Messages[0])).Event != "mention" {
		t.Errorf("user.bob: want one mention, got %+v", mention)
	}
	if r := do(t, "GET", srv.baseURL+"/comet/sub/user.bob?wait=0", nil); r.status != http.StatusUnauthorized {
		t.Errorf("user.bob without a token: want 401, got %d", r.status)
	}
	if r := do(t, "GET", srv.baseURL+"/comet/sub/user.ann?wait=0&token="+token, nil); r.status != http.StatusForbidden {
		t.Errorf("user.ann with bob's token: want 403, got %d", r.status)
	}
}

// TestLegacyAppSurvivesPushOutage posts to the chat while nothing listens at
// the comet URL: the message is saved and shown, with a notice, and the
// legacyPage is not broken by the outage.
func TestLegacyAppSurvivesPushOutage(t *testing.T) {
	php := requirePHP(t)
	phpPort := freePort(t)
	startLegacyApp(t, php, phpPort, "http://127.0.0.1:"+freePort(t)+"/comet")

	ann := newLegacyBrowser(t, "http://127.0.0.1:"+phpPort)
	room := ann.login("ann")
	after := ann.post("/post.php", url.Values{"text": {"still here"}, "csrf": {legacyCSRFOf(t, room.body)}})
	if after.status != http.StatusOK || !strings.Contains(after.body, "still here") {
		t.Fatalf("post during an outage: %d\n%s", after.status, after.body)
	}
	if !strings.Contains(after.body, "Live delivery is unavailable") {
		t.Errorf("no notice that live delivery failed:\n%s", after.body)
	}
	if strings.Contains(after.body, "Warning") || strings.Contains(after.body, "Fatal") {
		t.Errorf("PHP error text in the page:\n%s", after.body)
	}
}

// startLegacyApp runs testdata/legacy-app with PHP's built-in server and
// returns once it has said it is listening.
func startLegacyApp(t *testing.T, php, port, publishURL string) {
	t.Helper()
	cmd := exec.Command(php, "-S", "127.0.0.1:"+port, "-t", filepath.Join("..", "testdata", "legacy-app"))
	cmd.Env = append(os.Environ(),
		"COMET_PUBLISH_URL="+publishURL,
		"COMET_TOKEN_KEY="+legacyTokenKey,
		"CHAT_DATA_DIR="+t.TempDir(),
	)
	out := newOutputWatch(fmt.Sprintf("(http://127.0.0.1:%s) started", port))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start php -S: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("php -S log:\n%s", out.String())
		}
	})
	select {
	case <-out.seen:
	case <-time.After(10 * time.Second):
		t.Fatalf("php -S did not start:\n%s", out.String())
	}
}

// outputWatch collects a process's output and closes seen once it holds want.
type outputWatch struct {
	syncBuffer
	want string
	once sync.Once
	seen chan struct{}
}

func newOutputWatch(want string) *outputWatch {
	return &outputWatch{want: want, seen: make(chan struct{})}
}

func (w *outputWatch) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	if strings.Contains(w.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

// legacyBrowser is an HTTP client with cookies, like a browser with JavaScript off.
type legacyBrowser struct {
	t      *testing.T
	base   string
	client *http.Client
}

// legacyPage is a response after redirects were followed.
type legacyPage struct {
	status    int
	path      string
	redirects int
	body      string
}

func newLegacyBrowser(t *testing.T, base string) *legacyBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &legacyBrowser{t: t, base: base, client: &http.Client{Jar: jar, Timeout: 15 * time.Second}}
}

func (b *legacyBrowser) get(path string) legacyPage {
	b.t.Helper()
	req, err := http.NewRequest("GET", b.base+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *legacyBrowser) post(path string, form url.Values) legacyPage {
	b.t.Helper()
	req, err := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (b *legacyBrowser) do(req *http.Request) legacyPage {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	redirects := 0
	for r := resp.Request; r.Response != nil; r = r.Response.Request {
		if r.Response.StatusCode != http.StatusSeeOther {
			b.t.Errorf("%s %s: redirect with %d, want 303 See Other", req.Method, req.URL, r.Response.StatusCode)
		}
		redirects++
	}
	return legacyPage{status: resp.StatusCode, path: resp.Request.URL.Path, redirects: redirects, body: string(body)}
}

// login logs in through the form and returns the room page.
func (b *legacyBrowser) login(name string) legacyPage {
	b.t.Helper()
	form := b.get("/")
	if form.path != "/login.php" {
		b.t.Fatalf("a visitor without a session is sent to %s, want /login.php", form.path)
	}
	room := b.post("/login.php", url.Values{"name": {name}, "csrf": {legacyCSRFOf(b.t, form.body)}})
	if room.status != http.StatusOK || room.path != "/index.php" {
		b.t.Fatalf("login as %s: %d at %s\n%s", name, room.status, room.path, room.body)
	}
	return room
}

// htmlspecialchars escapes as PHP's htmlspecialchars with ENT_QUOTES does,
// which is what the app's pages hold.
func htmlspecialchars(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#039;").Replace(s)
}

var legacyCSRFField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func legacyCSRFOf(t *testing.T, body string) string {
	t.Helper()
	m := legacyCSRFField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF field in the page:\n%s", body)
	}
	return m[1]
}

var legacyTokenAttr = regexp.MustCompile(`data-token="([^"]*)"`)

// checkLegacyToken checks the page's subscribe token: an HS256 JWT
// signed with the app's key, for exactly the user's channel.
func checkLegacyToken(t *testing.T, body, channel string) string {
	t.Helper()
	m := legacyTokenAttr.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no data-token on the page")
	}
	parts := strings.Split(m[1], ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", m[1])
	}
	mac := hmac.New(sha256.New, []byte(legacyTokenKey))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if sig, err := base64.RawURLEncoding.DecodeString(parts[2]); err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		t.Errorf("token signature does not verify with COMET_TOKEN_KEY")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token payload: %v", err)
	}
	var claims struct {
		Channels []string `json:"channels"`
		Exp      int64    `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("token claims %s: %v", payload, err)
	}
	if len(claims.Channels) != 1 || claims.Channels[0] != channel || claims.Exp <= time.Now().Unix() {
		t.Errorf("token claims: want channels [%s] and a future exp, got %s", channel, payload)
	}
	return m[1]
}

// legacyFetched is a response read on another goroutine, where t.Fatal is not
// allowed.
type legacyFetched struct {
	status int
	body   string
	err    error
}

func legacyFetch(url string) legacyFetched {
	client := &http.Client{Timeout: 15 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return legacyFetched{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return legacyFetched{status: resp.StatusCode, body: string(b), err: err}
}
