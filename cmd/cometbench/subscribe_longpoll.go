package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// maxLongPollBody bounds one long-poll answer the client will read.
const maxLongPollBody = 64 << 20

// longPollSession polls over one kept-alive connection until it ends.
//
// cometbox (README "Transports"): the first request is a plain poll
// (?wait=0) that answers the hub's head as last_id, so the subscriber has a
// cursor before it counts as up; every later request sends the last_id of
// the previous answer and is held up to the long-poll wait. Nothing
// published between two polls is missed: the cursor is the acknowledgement.
//
// Nchan: one message per answer; its cursor is the Last-Modified and Etag
// response headers, sent back as If-Modified-Since and If-None-Match.
func longPollSession(ctx context.Context, s *subscriber) error {
	conn, err := s.env.dialer.dial(ctx, "tcp", hostPort(s.env.url))
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	defer closeOnDone(ctx, conn)()
	br := bufio.NewReaderSize(conn, 4096)
	var body bytes.Buffer
	hold := time.Duration(s.env.lpWait) * time.Second
	for {
		u := *s.env.url
		hdr := http.Header{"Accept": {"application/json"}}
		if s.env.target.name == targetCometbox {
			q := u.Query()
			q.Set("transport", "longpoll")
			if len(s.cursor) == 0 {
				q.Set("wait", "0")
			} else {
				q.Set("wait", strconv.Itoa(s.env.lpWait))
				q.Set("last_id", string(s.cursor))
			}
			u.RawQuery = q.Encode()
		} else {
			if s.lastModified != "" {
				hdr.Set("If-Modified-Since", s.lastModified)
			}
			if s.etag != "" {
				hdr.Set("If-None-Match", s.etag)
			}
			// Nchan answers nothing until a message comes, so the
			// request being on its way is as live as it gets; the probe
			// phase proves it.
			s.up()
		}
		resp, err := roundTrip(conn, br, &u, hdr, time.Now().Add(hold+15*time.Second))
		if err != nil {
			return err
		}
		body.Reset()
		_, err = body.ReadFrom(io.LimitReader(resp.Body, maxLongPollBody))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("long-poll body: %w", err)
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			if err := s.longPollAnswer(resp, body.Bytes()); err != nil {
				return err
			}
		case resp.StatusCode == http.StatusNotModified || resp.StatusCode == http.StatusRequestTimeout:
			// Nchan's "nothing came within the timeout": poll again.
		default:
			return statusError(resp)
		}
		if resp.Close {
			return fmt.Errorf("long-poll: server closed the connection")
		}
	}
}

// longPollAnswer records one 200 answer and moves the cursor.
func (s *subscriber) longPollAnswer(resp *http.Response, body []byte) error {
	if s.env.target.name != targetCometbox {
		if v := resp.Header.Get("Last-Modified"); v != "" {
			s.lastModified = v
		}
		if v := resp.Header.Get("Etag"); v != "" {
			s.etag = v
		}
		s.env.tracker.frame(s.ledger, body)
		return nil
	}
	var answer struct {
		Messages []json.RawMessage `json:"messages"`
		LastID   string            `json:"last_id"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return fmt.Errorf("long-poll answer: %w", err)
	}
	for _, m := range answer.Messages {
		s.envelope(m)
	}
	if answer.LastID != "" {
		s.cursor = append(s.cursor[:0], answer.LastID...)
	}
	s.up()
	return nil
}
