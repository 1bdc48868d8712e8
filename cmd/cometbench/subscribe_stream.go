package main

import (
	"bytes"
	"context"
	"net/http"
)

// streamSession holds one newline-delimited stream: cometbox's NDJSON
// (?transport=stream, one envelope per line), Nchan's http-raw-stream (one
// message per line) or Pushpin's held http-stream (one published item per
// line). With cometbox it resumes by ?last_id= after the stream ends, which
// it does by design every stream_max_bytes.
func streamSession(ctx context.Context, s *subscriber) error {
	u := *s.env.url
	if s.env.target.name == targetCometbox {
		q := u.Query()
		q.Set("transport", "stream")
		if len(s.cursor) > 0 {
			q.Set("last_id", string(s.cursor))
		}
		u.RawQuery = q.Encode()
	}
	conn, br, resp, err := s.openHTTP(ctx, &u, http.Header{"Accept": {"application/x-ndjson"}})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		return statusError(resp)
	}
	s.up()
	return s.hold(ctx, conn, br, newStreamDecoder(resp, s.env.bufSize, func(line []byte) error {
		if len(line) > 0 { // an empty line is a heartbeat
			s.envelope(line)
		}
		return nil
	}))
}

// envelope handles one frame that may be a cometbox envelope: its id becomes
// the resume cursor, a reset notice is counted, and the payload in it, if
// any, is recorded. Frames of other targets just carry the payload.
func (s *subscriber) envelope(frame []byte) {
	if s.env.target.name == targetCometbox {
		if id, ok := envelopeID(frame); ok {
			s.cursor = append(s.cursor[:0], id...)
		} else if bytes.Contains(frame, []byte(`"event":"comet.reset"`)) {
			s.env.tracker.resets.Add(1)
		}
	}
	s.env.tracker.frame(s.ledger, frame)
}

// envelopeID returns the id of a cometbox envelope, which the server always
// writes first (README "Envelope"); notices have none.
func envelopeID(frame []byte) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(frame, []byte(`{"id":"`))
	if !ok {
		return nil, false
	}
	id, _, ok := bytes.Cut(rest, []byte{'"'})
	return id, ok
}
