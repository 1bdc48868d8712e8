package caddymodule_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkHTTP2Subscribers holds SSE subscribers over HTTP/2 with TLS (how
// browsers reach Caddy by default: the handler path, one request goroutine
// per stream), 100 streams per connection as a browser multiplexes them,
// reports the server's memory per subscriber, then publishes and reports
// deliveries per second. Run with -benchtime=1x.
func BenchmarkHTTP2Subscribers(b *testing.B) {
	const (
		subscribers = 4000
		perConn     = 100
		messages    = 50
	)
	srv := startCaddy(b, "tls.Caddyfile")
	base := strings.Replace(srv.baseURL, "http://", "https://", 1)
	serverGC(b, srv)
	before := settledRSS(b, srv.pid())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ready, done sync.WaitGroup
	received := make(chan int, subscribers)
	for c := 0; c < subscribers/perConn; c++ {
		client := &http.Client{Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
			ForceAttemptHTTP2:   true,
			MaxConnsPerHost:     1,
			MaxIdleConnsPerHost: 1,
		}}
		for range perConn {
			ready.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				req, _ := http.NewRequestWithContext(ctx, "GET", base+"/comet/sub/h2", nil)
				req.Header.Set("Accept", "text/event-stream")
				resp, err := client.Do(req)
				if err != nil || resp.ProtoMajor != 2 {
					b.Errorf("subscribe: %v %v", err, resp)
					ready.Done()
					return
				}
				defer resp.Body.Close()
				lines := bufio.NewReader(resp.Body)
				got, started := 0, false
				for got < messages {
					line, err := lines.ReadString('\n')
					if err != nil {
						break
					}
					if !started && strings.HasPrefix(line, ": ok") {
						started = true
						ready.Done()
					}
					if strings.HasPrefix(line, "id: ") {
						got++
					}
				}
				received <- got
			}()
		}
	}
	ready.Wait()
	serverGC(b, srv)
	after := settledRSS(b, srv.pid())
	b.ReportMetric(float64(after-before)/subscribers, "KiB/subscriber")

	start := time.Now()
	for i := range messages {
		publishTextB(b, srv.baseURL, base, fmt.Sprint(i))
	}
	done.Wait()
	elapsed := time.Since(start)
	total := 0
	for range subscribers {
		total += <-received
	}
	if total != subscribers*messages {
		b.Fatalf("%d deliveries, want %d", total, subscribers*messages)
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "deliveries/s")
}

// publishTextB publishes over HTTPS from loopback.
func publishTextB(b *testing.B, _ string, base, text string) {
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Post(base+"/comet/pub/h2", "text/plain", strings.NewReader(text))
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("publish: %d", resp.StatusCode)
	}
}
