package caddymodule_test

import (
	"bufio"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// envelope is the JSON every transport carries (SPEC §4).
type envelope struct {
	ID      string          `json:"id"`
	Channel string          `json:"channel"`
	Event   string          `json:"event"`
	Type    string          `json:"type"`
	Data    json.RawMessage `json:"data"`
	Time    int64           `json:"time"`
}

// sseEvent is one parsed server-sent event.
type sseEvent struct {
	id, event, data string
}

// sseReader parses an SSE stream as a browser would (WHATWG HTML §9.2.6).
type sseReader struct {
	lines *bufio.Reader
}

func newSSEReader(r io.Reader) *sseReader { return &sseReader{lines: bufio.NewReader(r)} }

// next returns the next event, skipping comments and retry fields.
func (r *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	var data []string
	for {
		line, err := r.lines.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if data != nil {
				ev.data = strings.Join(data, "\n")
				return ev, nil
			}
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.id = value
		case "event":
			ev.event = value
		case "data":
			data = append(data, value)
		}
	}
}

// ndjsonReader reads one envelope per line, skipping heartbeat lines.
type ndjsonReader struct {
	lines *bufio.Reader
}

func newNDJSONReader(r io.Reader) *ndjsonReader { return &ndjsonReader{lines: bufio.NewReader(r)} }

func (r *ndjsonReader) next() (string, error) {
	for {
		line, err := r.lines.ReadString('\n')
		if err != nil {
			return "", err
		}
		if line = strings.TrimSuffix(line, "\n"); line != "" {
			return line, nil
		}
	}
}

func decodeEnvelope(t *testing.T, text string) envelope {
	t.Helper()
	var e envelope
	if err := json.Unmarshal([]byte(text), &e); err != nil {
		t.Fatalf("envelope %q: %v", text, err)
	}
	return e
}

func jsonField(t *testing.T, body, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	s, _ := m[field].(string)
	return s
}

// longPollAnswer is the body of a long-poll response.
type longPollAnswer struct {
	Messages []json.RawMessage `json:"messages"`
	LastID   string            `json:"last_id"`
}

func decodeLongPoll(t *testing.T, body string) longPollAnswer {
	t.Helper()
	var a longPollAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("long-poll answer %q: %v", body, err)
	}
	if a.Messages == nil {
		t.Fatalf("long-poll answer %q: messages is not an array", body)
	}
	return a
}

func (a longPollAnswer) envelopes(t *testing.T) []envelope {
	out := make([]envelope, len(a.Messages))
	for i, m := range a.Messages {
		out[i] = decodeEnvelope(t, string(m))
	}
	return out
}

func jsonUnmarshal(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
}
