package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
)

// wsSession holds one WebSocket (RFC 6455). With cometbox the channel comes
// from the URL and the socket is live once the comet.subscribed notice
// arrives (README "Transports"; SPEC §3: registered before that notice); it
// resumes with ?last_id=. Nchan sends each message as one text frame and is
// live after the handshake; it does not resume here. The handshake is
// plain HTTP/1.1; then the poller reads the socket's frames like a
// stream's lines.
func wsSession(ctx context.Context, s *subscriber) error {
	u := *s.env.url
	comet := s.env.target.name == targetCometbox
	if comet && len(s.cursor) > 0 {
		q := u.Query()
		q.Set("last_id", string(s.cursor))
		u.RawQuery = q.Encode()
	}
	key, accept := wsKey()
	hdr := http.Header{
		"Upgrade":               {"websocket"},
		"Connection":            {"Upgrade"},
		"Sec-WebSocket-Key":     {key},
		"Sec-WebSocket-Version": {"13"},
	}
	conn, br, resp, err := s.openHTTP(ctx, &u, hdr)
	if err != nil {
		return fmt.Errorf("websocket: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return statusError(resp)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != accept {
		conn.Close()
		return fmt.Errorf("websocket: Sec-WebSocket-Accept %q, want %q", got, accept)
	}
	if !comet {
		s.up()
	}
	d := &wsDecoder{max: s.env.bufSize, message: func(frame []byte) error {
		if comet && bytes.Contains(frame, []byte(`"event":"comet.subscribed"`)) {
			s.up()
			return nil
		}
		s.envelope(frame)
		return nil
	}}
	return s.hold(ctx, conn, br, d)
}
