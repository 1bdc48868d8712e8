package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestMessageReachesEveryTransportWithSameEnvelope(t *testing.T) {
	eachDeliveryPath(t, sameEnvelopeEverywhere)
}

func sameEnvelopeEverywhere(t *testing.T, path string) {
	srv := startCaddy(t, "core.Caddyfile", "UPSTREAM_PORT=1", "DIRECT="+path)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	sse := newSSEReader(openStream(t, ctx, srv.baseURL+"/comet/sub/room", "Accept", "text/event-stream").Body)
	stream := newNDJSONReader(openStream(t, ctx, srv.baseURL+"/comet/sub/room?transport=stream").Body)
	longPoll := make(chan response, 1)
	head := decodeLongPoll(t, do(t, "GET", srv.baseURL+"/comet/sub/room?wait=0", nil).body).LastID
	go func() {
		longPoll <- do(t, "GET", srv.baseURL+"/comet/sub/room?wait=10&last_id="+head, nil)
	}()

	// The streams are registered once their headers arrived; the long-poll
	// holds from its cursor, so it gets the message whenever it registers.
	published := do(t, "POST", srv.baseURL+"/comet/pub/room", strings.NewReader(`{"text":"hello"}`),
		"Content-Type", "application/json", "Comet-Event", "say")
	if published.status != http.StatusCreated {
		t.Fatalf("publish with subscribers: want 201, got %d %s", published.status, published.body)
	}
	id := jsonField(t, published.body, "id")

	ev, err := sse.next()
	if err != nil {
		t.Fatal(err)
	}
	if ev.id != id || ev.event != "say" {
		t.Errorf("SSE event: want id %s event say, got %+v", id, ev)
	}
	line, err := stream.next()
	if err != nil {
		t.Fatal(err)
	}
	polled := decodeLongPoll(t, (<-longPoll).body)
	if len(polled.Messages) != 1 || polled.LastID != id {
		t.Fatalf("long-poll: want one message and last_id %s, got %+v", id, polled)
	}
	if ev.data != line || line != string(polled.Messages[0]) {
		t.Errorf("envelopes differ:\nSSE:       %s\nstream:    %s\nlong-poll: %s", ev.data, line, polled.Messages[0])
	}
	e := decodeEnvelope(t, line)
	if e.ID != id || e.Channel != "room" || e.Event != "say" || e.Type != "application/json" || string(e.Data) != `{"text":"hello"}` || e.Time == 0 {
		t.Errorf("envelope: %+v", e)
	}
}

func TestLongPollResendsUnacknowledged(t *testing.T) {
	srv := startCaddy(t, "core.Caddyfile", "UPSTREAM_PORT=1")
	first := publishText(t, srv.baseURL, "ack", "one")
	second := publishText(t, srv.baseURL, "ack", "two")

	all := decodeLongPoll(t, do(t, "GET", srv.baseURL+"/comet/sub/ack?last_id=earliest&wait=0", nil).body)
	if got := ids(all.envelopes(t)); got != first+","+second || all.LastID != second {
		t.Fatalf("from earliest: want %s,%s last %s; got %s last %s", first, second, second, got, all.LastID)
	}
	// The client did not acknowledge "two": asking again with "one" resends it.
	for range 2 {
		again := decodeLongPoll(t, do(t, "GET", srv.baseURL+"/comet/sub/ack?wait=0&last_id="+first, nil).body)
		if got := ids(again.envelopes(t)); got != second {
			t.Fatalf("after %s: want %s again, got %q", first, second, got)
		}
	}
	// With the newest id it gets only what comes next.
	next := make(chan response, 1)
	go func() { next <- do(t, "GET", srv.baseURL+"/comet/sub/ack?wait=10&last_id="+second, nil) }()
	third := publishText(t, srv.baseURL, "ack", "three")
	got := decodeLongPoll(t, (<-next).body)
	if ids(got.envelopes(t)) != third || got.LastID != third {
		t.Fatalf("after %s: want only %s, got %+v", second, third, got)
	}
	// Nothing new: the answer is empty and the cursor does not go back.
	empty := decodeLongPoll(t, do(t, "GET", srv.baseURL+"/comet/sub/ack?wait=0&last_id="+third, nil).body)
	if len(empty.Messages) != 0 || empty.LastID != third {
		t.Fatalf("after %s with nothing new: got %+v", third, empty)
	}
	array := do(t, "GET", srv.baseURL+"/comet/sub/ack?wait=0&format=array&last_id="+second, nil)
	if !strings.HasPrefix(array.body, "[{") || !strings.Contains(array.body, `"id":"`+third+`"`) {
		t.Fatalf("format=array: got %s", array.body)
	}
}

func TestCursorBeyondHistoryGetsResetFirst(t *testing.T) {
	eachDeliveryPath(t, resetFirst)
}

func resetFirst(t *testing.T, path string) {
	srv := startCaddy(t, "core.Caddyfile", "UPSTREAM_PORT=1", "DIRECT="+path)
	var published []string
	for i := range 8 {
		published = append(published, publishText(t, srv.baseURL, "small.room", fmt.Sprint(i)))
	}
	epoch, _, _ := strings.Cut(published[0], "-")
	retained := strings.Join(published[3:], ",") // buffer small.* keeps 5

	cases := []struct {
		name      string
		cursor    string
		wantReset bool
		want      string
	}{
		{"older than the buffer", published[0], true, retained},
		{"another epoch", "zz9-3", true, retained},
		{"a cursor from the future", epoch + "-999999", true, retained},
		{"earliest never resets", "earliest", false, retained},
		{"inside the buffer", published[4], false, strings.Join(published[5:], ",")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, transport := range []string{"longpoll", "sse"} {
				envs := subscribeOnce(t, srv.baseURL, "small.room", tc.cursor, transport, len(strings.Split(tc.want, ","))+boolInt(tc.wantReset))
				gotReset := len(envs) > 0 && envs[0].Event == "comet.reset"
				if gotReset != tc.wantReset {
					t.Errorf("%s: reset first = %v, want %v (%+v)", transport, gotReset, tc.wantReset, envs)
				}
				if gotReset && (envs[0].ID != "" || envs[0].Channel != "small.room") {
					t.Errorf("%s: reset notice must name the channel and carry no id: %+v", transport, envs[0])
				}
				if got := ids(envs); got != tc.want {
					t.Errorf("%s: messages %s, want %s", transport, got, tc.want)
				}
			}
		})
	}
}

// subscribeOnce reads n envelopes over one transport from a cursor.
func subscribeOnce(t *testing.T, base, channel, cursor, transport string, n int) []envelope {
	t.Helper()
	switch transport {
	case "longpoll":
		return decodeLongPoll(t, do(t, "GET", base+"/comet/sub/"+channel+"?wait=0&last_id="+cursor, nil).body).envelopes(t)
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sse := newSSEReader(openStream(t, ctx, base+"/comet/sub/"+channel+"?transport=sse", "Last-Event-ID", cursor).Body)
		var envs []envelope
		for len(envs) < n {
			ev, err := sse.next()
			if err != nil {
				t.Fatalf("SSE after %d events: %v", len(envs), err)
			}
			envs = append(envs, decodeEnvelope(t, ev.data))
		}
		return envs
	}
}

func ids(envs []envelope) string {
	var out []string
	for _, e := range envs {
		if e.ID != "" {
			out = append(out, e.ID)
		}
	}
	return strings.Join(out, ",")
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
