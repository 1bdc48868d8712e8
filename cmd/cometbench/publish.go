package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// publisher sends numbered, timestamped messages to one channel.
type publisher struct {
	target  *target
	codec   *payloadCodec
	channel string
	size    int
	client  *http.Client
	errors  atomic.Int64
	errs    errorLog
}

func newPublisher(t *target, codec *payloadCodec, channel string, size, concurrency int) *publisher {
	return &publisher{
		target:  t,
		codec:   codec,
		channel: channel,
		size:    size,
		client: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				Proxy:               nil, // loopback only, whatever the environment says
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
				MaxIdleConnsPerHost: concurrency + 2,
				DisableCompression:  true,
			},
		},
	}
}

// publishOne publishes seq, stamped with the time it leaves, and returns
// that stamp.
func (p *publisher) publishOne(ctx context.Context, seq uint64, buf []byte) (int64, []byte, error) {
	ts := time.Now().UnixNano()
	buf = p.codec.encode(buf[:0], seq, ts, p.size)
	req, err := p.target.publishRequest(ctx, p.channel, buf)
	if err != nil {
		return ts, buf, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return ts, buf, fmt.Errorf("publish: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return ts, buf, fmt.Errorf("publish: HTTP %s", resp.Status)
	}
	return ts, buf, nil
}

// probe publishes one probe message (sequence 0).
func (p *publisher) probe(ctx context.Context) error {
	_, _, err := p.publishOne(ctx, probeSeq, nil)
	return err
}

// pubPlan is how a run publishes.
type pubPlan struct {
	Messages    int
	Rate        float64 // messages per second; 0 is as fast as possible
	Concurrency int     // requests in flight
	// Window, when above 0, keeps at most this many messages not yet
	// delivered to every subscriber: the publisher goes as fast as the
	// server delivers, never faster, so latency measures delivery rather
	// than a queue the publisher built. WindowTimeout lets a message that
	// never completes (a loss) stop holding the window.
	Window        int
	WindowTimeout time.Duration
}

// pubResult is what publishing did.
type pubResult struct {
	Start     time.Time
	End       time.Time
	Published int
	Stamps    []int64 // by seq: unix nanos it was stamped with
	Errors    int64
	Stalls    int // window waits that timed out
}

// run publishes plan.Messages messages. completions delivers each seq once
// every subscriber has it (used for the window).
func (p *publisher) run(ctx context.Context, plan pubPlan, completions <-chan uint64) pubResult {
	res := pubResult{Stamps: make([]int64, plan.Messages+1), Start: time.Now()}
	jobs := make(chan uint64)
	var wg sync.WaitGroup
	var published atomic.Int64
	for range max(plan.Concurrency, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for seq := range jobs {
				ts, b, err := p.publishOne(ctx, seq, buf)
				buf = b
				res.Stamps[seq] = ts // each seq has one writer; read after wg.Wait
				if err != nil {
					p.errors.Add(1)
					p.errs.add(err)
					continue
				}
				published.Add(1)
			}
		}()
	}

	completed := 0
	for i := 1; i <= plan.Messages && ctx.Err() == nil; i++ {
		for plan.Window > 0 && i-1-completed >= plan.Window {
			select {
			case <-completions:
				completed++
			case <-time.After(plan.WindowTimeout):
				completed++ // a lost message must not hold the window forever
				res.Stalls++
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
		}
		if plan.Rate > 0 {
			due := res.Start.Add(time.Duration(float64(i-1) / plan.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
		}
		select {
		case jobs <- uint64(i):
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	res.End = time.Now()
	res.Published = int(published.Load())
	res.Errors = p.errors.Load()
	return res
}
