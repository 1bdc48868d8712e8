package main

import (
	"bytes"
	"context"
	"net/http"
)

// sseSession holds one Server-Sent Events stream (WHATWG HTML §9.2). It
// resumes the way EventSource does: the last dispatched event's id goes
// back as Last-Event-ID, which cometbox and Nchan both honour. Pushpin's
// events carry no id here, so a Pushpin subscriber that drops loses what
// was published meanwhile, and the report counts it.
func sseSession(ctx context.Context, s *subscriber) error {
	hdr := http.Header{"Accept": {"text/event-stream"}, "Cache-Control": {"no-cache"}}
	if len(s.cursor) > 0 {
		hdr.Set("Last-Event-ID", string(s.cursor))
	}
	conn, br, resp, err := s.openHTTP(ctx, s.env.url, hdr)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		return statusError(resp)
	}
	s.up()
	p := &sseParser{s: s}
	return s.hold(ctx, conn, br, newStreamDecoder(resp, s.env.bufSize, p.line))
}

// sseParser turns lines into events, handing each dispatched event's data
// to the tracker. An event counts only once its blank line has come: a
// connection cut mid-event resumes from the previous id, so counting the
// half event would show up as a duplicate.
type sseParser struct {
	s         *subscriber
	data      []byte
	pendingID []byte
	hasID     bool
	event     []byte
}

func (p *sseParser) line(line []byte) error {
	if len(line) == 0 {
		if p.hasID {
			p.s.cursor = append(p.s.cursor[:0], p.pendingID...)
			p.hasID = false
		}
		if string(p.event) == "comet.reset" {
			p.s.env.tracker.resets.Add(1)
		}
		if len(p.data) > 0 {
			p.s.env.tracker.frame(p.s.ledger, p.data)
		}
		p.data, p.event = p.data[:0], p.event[:0]
		return nil
	}
	if line[0] == ':' {
		return nil // comment: heartbeat, padding
	}
	field, value, _ := bytes.Cut(line, []byte{':'})
	value = bytes.TrimPrefix(value, []byte{' '})
	switch string(field) {
	case "data":
		if len(p.data) > 0 {
			p.data = append(p.data, '\n')
		}
		p.data = append(p.data, value...)
	case "id":
		p.pendingID = append(p.pendingID[:0], value...)
		p.hasID = true
	case "event":
		p.event = append(p.event[:0], value...)
	}
	return nil
}
