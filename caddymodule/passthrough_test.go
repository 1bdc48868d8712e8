package caddymodule_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestOtherRequestsPassThroughUntouched sends a 5 MB body to a path outside
// the prefix: the upstream must see the same method, headers and bytes, and
// its streamed answer must reach the client piece by piece, not buffered.
func TestOtherRequestsPassThroughUntouched(t *testing.T) {
	type seen struct {
		method, path, custom, cookie string
		sum                          [32]byte
		length                       int64
	}
	arrived := make(chan seen, 1)
	release := make(chan struct{})
	upstream := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		arrived <- seen{r.Method, r.URL.RequestURI(), r.Header.Get("X-Legacy"), r.Header.Get("Cookie"), sha256.Sum256(body), r.ContentLength}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "first chunk\n")
		w.(http.Flusher).Flush()
		<-release // the second part waits until the client saw the first
		fmt.Fprint(w, "second chunk\n")
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go upstream.Serve(l)
	defer upstream.Close()
	srv := startCaddy(t, "core.Caddyfile", fmt.Sprintf("UPSTREAM_PORT=%d", l.Addr().(*net.TCPAddr).Port))

	body := make([]byte, 5<<20)
	rand.Read(body)
	req, _ := http.NewRequest("PUT", srv.baseURL+"/legacy/upload.php?x=1&comet=no", bytes.NewReader(body))
	req.Header.Set("X-Legacy", "kept as is")
	req.Header.Set("Cookie", "PHPSESSID=abc")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := <-arrived
	want := seen{"PUT", "/legacy/upload.php?x=1&comet=no", "kept as is", "PHPSESSID=abc", sha256.Sum256(body), int64(len(body))}
	if got != want {
		t.Fatalf("upstream saw %+v, want %+v", got, want)
	}
	lines := bufio.NewReader(resp.Body)
	first, err := lines.ReadString('\n')
	if err != nil || first != "first chunk\n" {
		t.Fatalf("first chunk did not arrive on its own: %q %v", first, err)
	}
	close(release)
	rest, _ := io.ReadAll(lines)
	if !strings.Contains(string(rest), "second chunk") {
		t.Fatalf("second chunk: %q", rest)
	}
}
