package caddymodule_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLongPollLosesNothingAcrossRandomReconnects publishes 1,000 messages on
// three channels while long-polling subscribers abandon requests at random
// and come back with their cursor: each must see every message of its
// channels exactly once, in order.
func TestLongPollLosesNothingAcrossRandomReconnects(t *testing.T) {
	srv := startCaddy(t, "core.Caddyfile", "UPSTREAM_PORT=1")
	channels := []string{"soak.a", "soak.b", "soak.c"}
	const total = 1000
	head := decodeLongPoll(t, do(t, "GET", srv.baseURL+"/comet/sub/soak.a?wait=0", nil).body).LastID

	subscribers := map[string][]string{
		"soak.a":               {"soak.a"},
		"soak.b":               {"soak.b"},
		"soak.c":               {"soak.c"},
		"soak.a,soak.b,soak.c": channels,
	}
	published := make(map[string][]string) // channel -> ids in order
	var publishedMu sync.Mutex
	done := make(chan struct{})
	received := make(map[string][]envelope)
	var wg sync.WaitGroup
	var receivedMu sync.Mutex
	for list := range subscribers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			envs := pollUntilDone(t, srv.baseURL, list, head, done, rand.New(rand.NewPCG(uint64(len(list)), 7)))
			receivedMu.Lock()
			received[list] = envs
			receivedMu.Unlock()
		}()
	}

	rng := rand.New(rand.NewPCG(1, 2))
	for i := range total {
		ch := channels[rng.IntN(len(channels))]
		id := publishText(t, srv.baseURL, ch, fmt.Sprint(i))
		publishedMu.Lock()
		published[ch] = append(published[ch], id)
		publishedMu.Unlock()
	}
	// A last message on every channel marks the end for every subscriber.
	for _, ch := range channels {
		published[ch] = append(published[ch], publishText(t, srv.baseURL, ch, "end"))
	}
	close(done)
	wg.Wait()

	for list, held := range subscribers {
		var want []string
		for _, ch := range held {
			want = append(want, published[ch]...)
		}
		got := received[list]
		seen := make(map[string]bool)
		perChannel := make(map[string][]string)
		for _, e := range got {
			if seen[e.ID] {
				t.Errorf("%s: %s delivered twice", list, e.ID)
			}
			seen[e.ID] = true
			perChannel[e.Channel] = append(perChannel[e.Channel], e.ID)
		}
		for _, ch := range held {
			if g, w := strings.Join(perChannel[ch], ","), strings.Join(published[ch], ","); g != w {
				t.Errorf("%s: channel %s got %d messages, want %d in order", list, ch, len(perChannel[ch]), len(published[ch]))
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: got %d messages, want %d", list, len(got), len(want))
		}
	}
}

// pollUntilDone long-polls a channel list from a cursor, dropping about one
// request in four before its answer, until done is closed and an answer
// with the "end" message of every channel has come.
func pollUntilDone(t *testing.T, base, list, cursor string, done <-chan struct{}, rng *rand.Rand) []envelope {
	var got []envelope
	ends := 0
	want := len(strings.Split(list, ","))
	for ends < want {
		ctx, cancel := context.WithCancel(context.Background())
		if rng.IntN(4) == 0 {
			// Abandon this request mid-hold: the answer, if any, is lost
			// with it, as when a connection drops.
			time.AfterFunc(time.Duration(rng.IntN(3000))*time.Microsecond, cancel)
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/comet/sub/"+list+"?wait=5&last_id="+cursor, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			if errors.Is(err, context.Canceled) {
				continue
			}
			t.Errorf("%s: %v", list, err)
			return got
		}
		body, err := readAll(resp)
		cancel()
		if err != nil {
			continue // dropped mid-answer: ask again from the same cursor
		}
		answer := decodeLongPoll(t, body)
		for _, e := range answer.envelopes(t) {
			got = append(got, e)
			if strings.Contains(string(e.Data), "end") {
				ends++
			}
		}
		cursor = answer.LastID
	}
	return got
}
