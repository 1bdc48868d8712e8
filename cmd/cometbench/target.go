package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Targets: the servers cometbench can drive. Each has its own publish
// format and subscribe URLs; the wire format of a transport (SSE, NDJSON,
// long-poll, WebSocket) is the subscriber's business, with the few
// per-target differences (how to resume) noted there.
const (
	targetCometbox = "cometbox"
	targetNchan    = "nchan"
	targetPushpin  = "pushpin"
	targetFloor    = "floor" // `cometbench floor`, on cometbox's URLs
)

// Transport names, as cometbox's ?transport= spells them.
const (
	transportSSE      = "sse"
	transportStream   = "stream"
	transportLongPoll = "longpoll"
	transportWS       = "ws"
)

// target is one server under test: where to publish and subscribe.
type target struct {
	name      string
	transport string
	pubURL    string // template; {channel} is replaced
	subURL    string // template; {channel} is replaced
}

// defaultBase is where compare.sh runs each server: ports off the usual
// 8080 family, so a developer's own Caddy on 8080 is not measured instead.
func defaultBase(name string) string {
	switch name {
	case targetNchan:
		return "http://127.0.0.1:18081"
	case targetPushpin:
		return "http://127.0.0.1:17999" // Pushpin's proxy port
	case targetFloor:
		return "http://127.0.0.1:18082"
	default:
		return "http://127.0.0.1:18080"
	}
}

// newTarget fills in the default URL templates of a target; pub and sub,
// when not empty, override them.
func newTarget(name, transport, base, pub, sub string) (*target, error) {
	if base == "" {
		base = defaultBase(name)
	}
	base = strings.TrimSuffix(base, "/")
	t := &target{name: name, transport: transport}
	switch name {
	case targetCometbox, targetFloor:
		// README "Routes": POST {prefix}/pub/{channel}, GET {prefix}/sub/{channels}.
		if name == targetFloor && transport != transportSSE {
			return nil, fmt.Errorf("target floor: transport %q is not supported (sse)", transport)
		}
		t.pubURL = base + "/comet/pub/{channel}"
		t.subURL = base + "/comet/sub/{channel}"
	case targetNchan:
		// testdata/bench/nchan.conf: a publisher location taking the
		// channel from ?id=, a subscriber location taking it from the
		// path (EventSource, WebSocket and long-poll on one URL, chosen
		// by request headers), and an http-raw-stream location for
		// newline-separated streaming.
		t.pubURL = base + "/pub?id={channel}"
		t.subURL = base + "/sub/{channel}"
		if transport == transportStream {
			t.subURL = base + "/sub-raw/{channel}"
		}
	case targetPushpin:
		// Publishing goes to Pushpin's HTTP control API; subscribers go
		// through its proxy to `cometbench origin`, which answers with
		// Grip-Hold: stream.
		t.pubURL = "http://127.0.0.1:5561/publish/"
		t.subURL = base + "/sub/{channel}?format=" + transport
		if transport != transportSSE && transport != transportStream {
			return nil, fmt.Errorf("target pushpin: transport %q is not supported (sse, stream)", transport)
		}
	default:
		return nil, fmt.Errorf("unknown target %q (cometbox, nchan, pushpin, floor)", name)
	}
	switch transport {
	case transportSSE, transportStream, transportLongPoll, transportWS:
	default:
		return nil, fmt.Errorf("unknown transport %q (sse, stream, longpoll, ws)", transport)
	}
	if pub != "" {
		t.pubURL = pub
	}
	if sub != "" {
		t.subURL = sub
	}
	for _, u := range []string{t.pubURL, t.subURL} {
		if _, err := url.Parse(strings.ReplaceAll(u, "{channel}", "c")); err != nil {
			return nil, fmt.Errorf("target %s: url template %q: %w", name, u, err)
		}
	}
	return t, nil
}

// subscribeURL is the subscribe URL for channel.
func (t *target) subscribeURL(channel string) (*url.URL, error) {
	u, err := url.Parse(strings.ReplaceAll(t.subURL, "{channel}", url.PathEscape(channel)))
	if err != nil {
		return nil, fmt.Errorf("subscribe url: %w", err)
	}
	return u, nil
}

// publishRequest builds the request that publishes payload to channel.
func (t *target) publishRequest(ctx context.Context, channel string, payload []byte) (*http.Request, error) {
	u := strings.ReplaceAll(t.pubURL, "{channel}", url.PathEscape(channel))
	body, ctype := payload, "text/plain"
	if t.name == targetPushpin {
		var err error
		body, err = pushpinItems(channel, t.transport, payload)
		if err != nil {
			return nil, err
		}
		ctype = "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("publish request: %w", err)
	}
	req.Header.Set("Content-Type", ctype)
	return req, nil
}

// pushpinItems is a Pushpin control API publish body (GRIP): one item for
// the http-stream format, framed the way the origin's held response is.
func pushpinItems(channel, transport string, payload []byte) ([]byte, error) {
	var content string
	if transport == transportSSE {
		content = "data: " + string(payload) + "\n\n"
	} else {
		content = string(payload) + "\n"
	}
	type stream struct {
		Content string `json:"content"`
	}
	type item struct {
		Channel string            `json:"channel"`
		Formats map[string]stream `json:"formats"`
	}
	return json.Marshal(map[string][]item{"items": {{
		Channel: channel,
		Formats: map[string]stream{"http-stream": {Content: content}},
	}}})
}
