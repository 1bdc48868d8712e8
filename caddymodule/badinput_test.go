package caddymodule_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestBadInputIsRefusedAndStoresNothing tries every kind of bad request:
// each gets a clear 4xx with a reason, and nothing reaches the history.
func TestBadInputIsRefusedAndStoresNothing(t *testing.T) {
	srv := startCaddy(t, "core.Caddyfile", "UPSTREAM_PORT=1")
	base := srv.baseURL
	mib := strings.Repeat("x", 1<<20)

	cases := []struct {
		name, method, path, contentType, body string
		header                                []string
		status                                int
		reason                                string
	}{
		{"channel with a bad byte", "POST", "/comet/pub/bad!name", "text/plain", "x", nil, 400, "byte"},
		{"channel with a dot-dot segment", "POST", "/comet/pub/a/../b", "text/plain", "x", nil, 400, `".." segment`},
		{"channel with an empty segment", "POST", "/comet/pub/a//b", "text/plain", "x", nil, 400, "empty segment"},
		{"channel too long", "POST", "/comet/pub/" + strings.Repeat("c", 129), "text/plain", "x", nil, 400, "at most 128"},
		{"channel with NUL", "POST", "/comet/pub/a%00b", "text/plain", "x", nil, 400, "byte"},
		{"subscribe to a bad channel", "GET", "/comet/sub/ok,bad%20name?wait=0", "", "", nil, 400, "byte"},
		{"JSON body that is not JSON", "POST", "/comet/pub/t.json", "application/json", `{"a":`, nil, 400, "JSON"},
		{"invalid UTF-8 text", "POST", "/comet/pub/t.text", "text/plain", "\xff\xfe", nil, 400, "UTF-8"},
		{"reserved event name", "POST", "/comet/pub/t.event", "text/plain", "x", []string{"Comet-Event", "comet.reset"}, 400, "reserved"},
		{"malformed JSON batch", "POST", "/comet/pub", "application/json", `{"messages":[{"channel":"t.batch","data":1},`, nil, 400, ""},
		{"batch with one bad message", "POST", "/comet/pub", "application/json", `[{"channel":"t.batch","data":1},{"channel":"bad name","data":2}]`, nil, 400, "message 1"},
		{"malformed XML", "POST", "/comet/pub", "application/xml", `<message channel="t.batch">x`, nil, 400, ""},
		{"XML with a DTD", "POST", "/comet/pub", "application/xml", `<?xml version="1.0"?><!DOCTYPE m [<!ENTITY e "boom">]><message channel="t.batch">&e;</message>`, nil, 400, ""},
		{"malformed form", "POST", "/comet/pub", "application/x-www-form-urlencoded", "channel=t.batch&data=%zz", nil, 400, ""},
		{"form without a channel", "POST", "/comet/pub", "application/x-www-form-urlencoded", "data=x", nil, 400, "channel"},
		{"batch of an unknown type", "POST", "/comet/pub", "image/png", "x", nil, 400, "content type"},
		{"body over max_body_size", "POST", "/comet/pub/t.big", "text/plain", mib + "x", nil, 413, "max_body_size"},
		{"unknown transport", "GET", "/comet/sub/t.sub?transport=carrier-pigeon", "", "", nil, 400, "unknown transport"},
		{"malformed cursor in the query", "GET", "/comet/sub/t.sub?last_id=nope", "", "", nil, 400, "last_id"},
		{"malformed cursor in the header", "GET", "/comet/sub/t.sub", "", "", []string{"Last-Event-ID", "abc-"}, 400, "Last-Event-ID"},
		{"malformed wait", "GET", "/comet/sub/t.sub?wait=soon", "", "", nil, 400, "wait"},
		{"publish from a network not allowed", "POST", "/walled/pub/t.walled", "text/plain", "x", nil, 403, "publish_from"},
		{"info from a network not allowed", "GET", "/walled/pub/t.walled", "", "", nil, 403, "publish_from"},
		{"publish without the key", "POST", "/keyed/pub/t.keyed", "text/plain", "x", nil, 403, "publish_key"},
		{"publish with a wrong key", "POST", "/keyed/pub/t.keyed", "text/plain", "x", []string{"Authorization", "Bearer guess"}, 403, "publish_key"},
		{"wrong method on pub", "PUT", "/comet/pub/t.method", "text/plain", "x", nil, 405, "POST"},
		{"wrong method on sub", "POST", "/comet/sub/t.method", "text/plain", "x", nil, 405, "GET"},
		{"unknown endpoint", "GET", "/comet/nothing", "", "", nil, 404, "no such"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			header := append([]string{"Content-Type", tc.contentType}, tc.header...)
			r := doRaw(t, base, tc.method, tc.path, tc.body, header...)
			if r.status != tc.status {
				t.Fatalf("want %d, got %d %s", tc.status, r.status, r.body)
			}
			if reason := jsonField(t, r.body, "error"); reason == "" || !strings.Contains(reason, tc.reason) {
				t.Errorf("reason %q does not mention %q", reason, tc.reason)
			}
		})
	}
	// Nothing of the above was stored, on any of the hubs.
	for _, p := range []string{"/comet/pub/t.json", "/comet/pub/t.text", "/comet/pub/t.event", "/comet/pub/t.batch", "/comet/pub/t.big", "/comet/pub/t.method"} {
		if r := do(t, "GET", base+p, nil); r.status != http.StatusNotFound {
			t.Errorf("%s after refused publishes: want 404, got %d %s", p, r.status, r.body)
		}
	}
	if r := do(t, "GET", base+"/keyed/pub/t.keyed", nil, "Authorization", "Bearer s3cret"); r.status != http.StatusNotFound {
		t.Errorf("keyed channel after refused publishes: want 404, got %d %s", r.status, r.body)
	}

	// The limits are exact: exactly max_body_size is accepted, and the key
	// lets a publisher in.
	if r := do(t, "POST", base+"/comet/pub/t.exact", strings.NewReader(mib), "Content-Type", "text/plain"); r.status != http.StatusAccepted {
		t.Errorf("exactly max_body_size: want 202, got %d %s", r.status, r.body)
	}
	if r := do(t, "POST", base+"/keyed/pub/t.keyed", strings.NewReader("x"), "Authorization", "Bearer s3cret"); r.status != http.StatusAccepted {
		t.Errorf("with the key: want 202, got %d %s", r.status, r.body)
	}
	// And the hub keeps serving.
	publishText(t, base, "t.after", "still here")
}

// doRaw sends a request line exactly as given, so that paths like
// /a/../b reach the server unnormalized.
func doRaw(t *testing.T, base, method, path, body string, header ...string) response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var req strings.Builder
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n", method, path, strings.TrimPrefix(base, "http://"), len(body))
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] != "" {
			fmt.Fprintf(&req, "%s: %s\r\n", header[i], header[i+1])
		}
	}
	req.WriteString("\r\n")
	req.WriteString(body)
	// The server may answer (413) and close before reading the whole body,
	// so the write runs on its own and its error does not matter.
	go conn.Write([]byte(req.String()))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := readAll(resp)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}
