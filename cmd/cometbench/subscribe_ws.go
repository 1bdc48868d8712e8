package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/coder/websocket"
)

// wsSession holds one WebSocket (RFC 6455). With cometbox the channel comes
// from the URL and the socket is live once the comet.subscribed notice
// arrives (README "Transports"; SPEC §3: registered before that notice); it
// resumes with ?last_id=. Nchan sends each message as one text frame and is
// live after the handshake; it does not resume here.
func wsSession(ctx context.Context, s *subscriber) error {
	u := *s.env.url
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	if s.env.target.name == targetCometbox && len(s.cursor) > 0 {
		q := u.Query()
		q.Set("last_id", string(s.cursor))
		u.RawQuery = q.Encode()
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	conn, _, err := websocket.Dial(dctx, u.String(), &websocket.DialOptions{
		HTTPClient:      s.env.wsClient,
		CompressionMode: websocket.CompressionDisabled,
	})
	cancel()
	if err != nil {
		return fmt.Errorf("websocket dial: %w", err)
	}
	defer conn.CloseNow()
	// Reads take a context that never ends: a cancellable one costs
	// coder/websocket a timer per read, which the client cannot afford at
	// 100,000 frames a second. The run's end closes the socket instead.
	defer context.AfterFunc(ctx, func() { conn.CloseNow() })()
	conn.SetReadLimit(int64(s.env.bufSize))
	if s.env.target.name != targetCometbox {
		s.up()
	}
	var buf bytes.Buffer
	for {
		typ, r, err := conn.Reader(context.Background())
		if err != nil {
			return fmt.Errorf("websocket read: %w", err)
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return fmt.Errorf("websocket read: %w", err)
		}
		if typ != websocket.MessageText {
			continue
		}
		frame := buf.Bytes()
		if s.env.target.name == targetCometbox && bytes.Contains(frame, []byte(`"event":"comet.subscribed"`)) {
			s.up()
			continue
		}
		s.envelope(frame)
	}
}
