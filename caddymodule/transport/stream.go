package transport

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/internal/urlquery"
	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/transport/direct"
)

// framing is what differs between the two streaming transports.
type framing struct {
	contentType string
	// preamble is written once, right after the headers, so that proxies
	// flush them and the client knows the stream is live.
	preamble  []byte
	heartbeat []byte
	// frame writes one message.
	frame func(out *frameWriter, m *message.Message)
	// appendFrame is the same for the direct path: the message's shared
	// buffers, appended to a backlog.
	appendFrame func(dst [][]byte, m *message.Message) [][]byte
	// maxBytes ends the stream once it has written this much; 0 is no limit.
	maxBytes    int64
	extraHeader func(http.Header)
}

// ServeSSE holds an SSE connection (WHATWG HTML §9.2): `retry:` once, a
// comment that flushes proxies, then one event per message with `id:` set
// so that EventSource resends it as Last-Event-ID on reconnect.
func ServeSSE(w http.ResponseWriter, r *http.Request, h *hub.Hub, req hub.SubscribeRequest, opts *Options) error {
	var pre strings.Builder
	pre.WriteString("retry: ")
	pre.WriteString(strconv.FormatInt(opts.SSERetry.Milliseconds(), 10))
	pre.WriteString("\n: ok\n\n")
	if urlquery.Get(r.URL.RawQuery, "padding") == "1" {
		// Some old proxies and antivirus filters hold the first 2 KiB back.
		pre.WriteString(":" + strings.Repeat(" ", 2048) + "\n\n")
	}
	return serveStream(w, r, h, req, opts, framing{
		contentType: "text/event-stream",
		preamble:    []byte(pre.String()),
		heartbeat:   []byte(": heartbeat\n\n"),
		frame:       func(out *frameWriter, m *message.Message) { out.write(m.SSE()) },
		appendFrame: func(dst [][]byte, m *message.Message) [][]byte { return append(dst, m.SSE()) },
	})
}

// ServeStream holds an NDJSON stream: one envelope per line, an empty line as
// heartbeat, closed after StreamMaxBytes.
func ServeStream(w http.ResponseWriter, r *http.Request, h *hub.Hub, req hub.SubscribeRequest, opts *Options) error {
	return serveStream(w, r, h, req, opts, framing{
		contentType: "application/x-ndjson",
		heartbeat:   []byte("\n"),
		frame:       func(out *frameWriter, m *message.Message) { out.write(m.Line()) },
		appendFrame: func(dst [][]byte, m *message.Message) [][]byte { return append(dst, m.Line()) },
		maxBytes:    opts.StreamMaxBytes,
		extraHeader: func(h http.Header) {
			// Asks intermediaries to forward each part as it comes
			// (draft-ietf-httpbis-incremental).
			h.Set("Incremental", "?1")
		},
	})
}

// ErrWrite marks a failed write to the subscriber after the headers went
// out: the client is gone or stalled, and it will resume by cursor.
var ErrWrite = errors.New("write to subscriber")

func serveStream(w http.ResponseWriter, r *http.Request, h *hub.Hub, req hub.SubscribeRequest, opts *Options, f framing) error {
	if opts.Direct != nil {
		if taken, err := opts.Direct.Serve(w, r, h, req, held(r, opts), opts.directStream(f)); taken {
			return err
		}
	}
	// Registered before the headers are flushed (SPEC §3): whatever is
	// published after the client sees them reaches it.
	sub, q, err := subscribe(r, h, req)
	if err != nil {
		return err
	}
	setStreamHeaders(w, f.contentType)
	if f.extraHeader != nil {
		f.extraHeader(w.Header())
	}
	w.WriteHeader(http.StatusOK)
	s := &heldStream{r: r, sub: sub, q: q, out: newFrameWriter(w, f.maxBytes, opts.WriteTimeout), f: f, opts: opts}
	if len(f.preamble) > 0 {
		s.out.write(f.preamble)
	}
	if err := s.out.flush(); err != nil {
		s.end()
		return nil // the client left before the first byte; nothing to tell
	}
	if handOver(r, s.run) {
		return nil
	}
	return s.run()
}

// heldStream is a stream on the handler path once its headers went out:
// what its loop needs, so that the loop can run on another goroutine than
// the setup (see Handoff).
type heldStream struct {
	r   *http.Request
	sub *hub.Subscription
	q   *hub.Queue
	out *frameWriter
	// f is a copy: a pointer to serveStream's would move that to the
	// heap for every subscriber, those of the direct path too.
	f    framing
	opts *Options
}

// run writes what the subscription receives, and heartbeats, until the
// client leaves, the hub ends the subscription, the handler is unloaded or
// the grant expires.
func (s *heldStream) run() error {
	defer s.end()
	out, f, opts := s.out, &s.f, s.opts
	heartbeat := time.NewTimer(opts.Heartbeat)
	defer heartbeat.Stop()
	unload := opts.Unload
	var closeTimer <-chan time.Time
	var frames []*message.Message
	for {
		select {
		case <-s.q.Ready():
			var ended error
			frames, ended = s.q.Drain(frames[:0], drainBudget)
			for _, m := range frames {
				f.frame(out, m)
			}
			clear(frames)
			if ended != nil {
				return out.finish()
			}
			if out.full() {
				f.frame(out, reconnectNotice(reasonMaxBytes))
				return out.finish()
			}
			if err := out.flush(); err != nil {
				return nil
			}
			heartbeat.Reset(opts.Heartbeat)
		case <-heartbeat.C:
			out.write(f.heartbeat)
			if err := out.flush(); err != nil {
				return nil
			}
			heartbeat.Reset(opts.Heartbeat)
		case <-unload:
			unload = nil
			closeTimer = time.After(opts.closeDelay())
		case <-closeTimer:
			f.frame(out, reconnectNotice(reasonUnload))
			return out.finish()
		case <-s.r.Context().Done():
			if grantExpired(s.r) {
				f.frame(out, reconnectNotice(reasonExpired))
				return out.finish()
			}
			return nil
		}
	}
}

// end leaves the hub and clears the write deadline.
func (s *heldStream) end() {
	s.sub.Close()
	s.out.release()
}

// directStream describes a stream for the direct path. Streams are shared
// by every connection of a handler (one per framing), so an idle
// subscriber holds a pointer, not a copy.
func (o *Options) directStream(f framing) *direct.Stream {
	o.streamsMu.Lock()
	defer o.streamsMu.Unlock()
	key := f.contentType + "\x00" + string(f.preamble)
	if s, ok := o.streams[key]; ok {
		return s
	}
	if o.streams == nil {
		o.streams = make(map[string]*direct.Stream)
	}
	s := f.direct(o)
	o.streams[key] = s
	return s
}

// direct describes the stream for the direct path.
func (f framing) direct(opts *Options) *direct.Stream {
	s := &direct.Stream{
		ContentType:    f.contentType,
		Preamble:       f.preamble,
		AppendFrame:    f.appendFrame,
		HeartbeatBytes: f.heartbeat,
		Heartbeat:      opts.Heartbeat,
		WriteTimeout:   opts.WriteTimeout,
		MaxBytes:       f.maxBytes,
		Farewell:       f.farewell,
	}
	if f.extraHeader != nil {
		h := http.Header{}
		f.extraHeader(h)
		s.ExtraHeaders = make(map[string]string, len(h))
		for k := range h {
			s.ExtraHeaders[k] = h.Get(k)
		}
	}
	return s
}

// farewell is the comet.reconnect notice that ends a stream the server
// ends; the hub's reasons were told by the hub already.
func (f framing) farewell(reason error) []byte {
	switch {
	case errors.Is(reason, direct.ErrUnload), errors.Is(reason, direct.ErrExpired), errors.Is(reason, direct.ErrMaxBytes):
		return bytes.Join(f.appendFrame(nil, reconnectNotice(reason.Error())), nil)
	}
	return nil
}

// held is what the direct path needs to know of a request.
func held(r *http.Request, opts *Options) direct.Held {
	h := direct.Held{Unload: opts.Unload, CloseDelay: opts.CloseDelay, TakeRelease: func() func() { return takeRelease(r) }}
	if until, ok := grantUntil(r); ok {
		h.Until = until
	}
	return h
}

// frameWriter writes frames to a held response through its
// ResponseController, each batch bounded by a write deadline that is
// cleared once the batch is flushed. Left set, the deadline would outlive
// the batch: over HTTP/2 an expired deadline resets the stream even when
// nothing is being written, so an idle subscriber would be cut.
type frameWriter struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	timeout  time.Duration
	written  int64
	maxBytes int64
	armed    bool // a write deadline is set for the batch being written
	err      error
}

func newFrameWriter(w http.ResponseWriter, maxBytes int64, timeout time.Duration) *frameWriter {
	return &frameWriter{w: w, rc: http.NewResponseController(w), timeout: timeout, maxBytes: maxBytes}
}

func (fw *frameWriter) write(b []byte) {
	if fw.err != nil {
		return
	}
	fw.arm()
	n, err := fw.w.Write(b)
	fw.written += int64(n)
	fw.err = err
}

func (fw *frameWriter) full() bool { return fw.maxBytes > 0 && fw.written >= fw.maxBytes }

// arm sets the deadline of the batch being written, once per batch.
func (fw *frameWriter) arm() {
	if !fw.armed {
		// Best effort: not every ResponseWriter supports deadlines.
		_ = fw.rc.SetWriteDeadline(time.Now().Add(fw.timeout))
		fw.armed = true
	}
}

func (fw *frameWriter) flush() error {
	if fw.err == nil {
		fw.arm()
		fw.err = fw.rc.Flush()
	}
	if fw.err != nil {
		return errors.Join(ErrWrite, fw.err)
	}
	fw.release() // the next batch sets its own; an idle stream has none
	return nil
}

// release clears the write deadline: an idle stream must not be cut by
// it, and the connection may serve another request after this response.
func (fw *frameWriter) release() {
	if fw.armed {
		_ = fw.rc.SetWriteDeadline(time.Time{})
		fw.armed = false
	}
}

// finish flushes what was written and ends the response. A hub that ended
// the subscription (slow consumer, deleted, closed) ends it quietly:
// whatever it wanted said is already in the queue.
func (fw *frameWriter) finish() error {
	_ = fw.flush()
	return nil
}
