package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// mockComet speaks cometbox's wire format as README.md describes it, for one
// hub with history: SSE, NDJSON, long-poll and WebSocket subscribers,
// POST /comet/pub/{channel} publishers, resume by Last-Event-ID or
// ?last_id=. cutAfter, when set, ends every stream after that many messages
// (as stream_max_bytes or a slow-consumer cut would), so clients must resume.
type mockComet struct {
	cutAfter int

	mu      sync.Mutex
	seq     int
	history []mockMsg
	subs    map[chan mockMsg]bool
}

type mockMsg struct {
	seq  int
	line []byte // the envelope, one line
}

const mockEpoch = "t0"

func newMockComet(t *testing.T, cutAfter int) *httptest.Server {
	m := &mockComet{cutAfter: cutAfter, subs: make(map[chan mockMsg]bool)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /comet/pub/{channel}", m.publish)
	mux.HandleFunc("GET /comet/sub/{channel}", m.subscribe)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv
}

func (m *mockComet) publish(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	data, _ := json.Marshal(string(body))
	m.mu.Lock()
	m.seq++
	id := fmt.Sprintf("%s-%d", mockEpoch, m.seq)
	msg := mockMsg{seq: m.seq, line: fmt.Appendf(nil, `{"id":%q,"channel":%q,"type":"text/plain","data":%s,"time":%d}`,
		id, r.PathValue("channel"), data, time.Now().UnixMilli())}
	m.history = append(m.history, msg)
	n := len(m.subs)
	for ch := range m.subs {
		select {
		case ch <- msg:
		default: // a slow consumer; this mock never has one
		}
	}
	m.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"id":%q,"channel":%q,"subscribers":%d}`, id, r.PathValue("channel"), n)
}

// register subscribes from cursor: what history holds after it, then a
// channel of live messages, atomically, so nothing falls between.
func (m *mockComet) register(cursor string) (replay []mockMsg, live chan mockMsg, head int) {
	after := -1 // no cursor: from now on
	if cursor != "" {
		after, _ = strconv.Atoi(strings.TrimPrefix(cursor, mockEpoch+"-"))
	}
	live = make(chan mockMsg, 4096)
	m.mu.Lock()
	defer m.mu.Unlock()
	if after >= 0 {
		for _, h := range m.history {
			if h.seq > after {
				replay = append(replay, h)
			}
		}
	}
	m.subs[live] = true
	return replay, live, m.seq
}

func (m *mockComet) unregister(live chan mockMsg) {
	m.mu.Lock()
	delete(m.subs, live)
	m.mu.Unlock()
}

func (m *mockComet) subscribe(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
		m.serveWS(w, r)
	case q.Get("transport") == "stream":
		m.serveStream(w, r, q.Get("last_id"), func(msg mockMsg) []byte { return append(append([]byte(nil), msg.line...), '\n') },
			"application/x-ndjson", nil, []byte(`{"event":"comet.reconnect","data":"stream_max_bytes"}`+"\n"))
	case strings.Contains(r.Header.Get("Accept"), "text/event-stream"):
		m.serveStream(w, r, r.Header.Get("Last-Event-ID"), func(msg mockMsg) []byte {
			return fmt.Appendf(nil, "id: %s-%d\ndata: %s\n\n", mockEpoch, msg.seq, msg.line)
		}, "text/event-stream", []byte("retry: 2000\n: ok\n\n"), nil)
	default:
		m.serveLongPoll(w, r)
	}
}

func (m *mockComet) serveStream(w http.ResponseWriter, r *http.Request, cursor string, frame func(mockMsg) []byte, ctype string, preamble, last []byte) {
	replay, live, _ := m.register(cursor)
	defer m.unregister(live)
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.Write(preamble)
	rc := http.NewResponseController(w)
	rc.Flush()
	sent := 0
	send := func(msg mockMsg) bool {
		w.Write(frame(msg))
		sent++
		if m.cutAfter > 0 && sent >= m.cutAfter {
			w.Write(last)
			rc.Flush()
			return false
		}
		return rc.Flush() == nil
	}
	for _, msg := range replay {
		if !send(msg) {
			return
		}
	}
	for {
		select {
		case msg := <-live:
			if !send(msg) {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}

func (m *mockComet) serveLongPoll(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cursor := q.Get("last_id")
	wait, _ := strconv.Atoi(q.Get("wait"))
	replay, live, head := m.register(cursor)
	defer m.unregister(live)
	if len(replay) == 0 && cursor != "" && wait > 0 {
		select {
		case msg := <-live:
			replay = append(replay, msg)
		case <-time.After(time.Duration(wait) * time.Second):
		case <-r.Context().Done():
			return
		}
	}
	if m.cutAfter > 0 && len(replay) > m.cutAfter {
		replay = replay[:m.cutAfter] // answer in parts: the cursor carries the rest
	}
	lines := make([]json.RawMessage, 0, len(replay))
	last := head
	for _, msg := range replay {
		lines = append(lines, msg.line)
		last = msg.seq
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"messages": lines, "last_id": fmt.Sprintf("%s-%d", mockEpoch, last)})
}

func (m *mockComet) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer conn.CloseNow()
	replay, live, _ := m.register(r.URL.Query().Get("last_id"))
	defer m.unregister(live)
	ctx := conn.CloseRead(r.Context())
	notice := fmt.Sprintf(`{"channel":%q,"event":"comet.subscribed","time":1}`, r.PathValue("channel"))
	if conn.Write(ctx, websocket.MessageText, []byte(notice)) != nil {
		return
	}
	sent := 0
	send := func(msg mockMsg) bool {
		if conn.Write(ctx, websocket.MessageText, msg.line) != nil {
			return false
		}
		sent++
		if m.cutAfter > 0 && sent >= m.cutAfter {
			conn.Close(websocket.StatusPolicyViolation, "slow consumer: outbound queue full")
			return false
		}
		return true
	}
	for _, msg := range replay {
		if !send(msg) {
			return
		}
	}
	for {
		select {
		case msg := <-live:
			if !send(msg) {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}
