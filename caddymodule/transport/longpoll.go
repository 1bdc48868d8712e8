package transport

import (
	"net/http"
	"time"

	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/message"
)

// LongPollRequest is a long-poll's own parameters.
type LongPollRequest struct {
	hub.SubscribeRequest
	// Wait is how long to hold the request when nothing is newer than the
	// cursor; 0 answers at once (plain polling).
	Wait time.Duration
	// Array answers the bare JSON array of the original design instead of
	// {"messages":[...],"last_id":"..."}.
	Array bool
}

// ServeLongPoll answers at once when something is newer than the cursor,
// else holds the request until a message comes or the wait runs out. The
// client acknowledges by sending the answer's last_id with its next request;
// everything after it is sent again until then, so a dropped answer costs a
// repeat, never a message.
func ServeLongPoll(w http.ResponseWriter, r *http.Request, h *hub.Hub, req LongPollRequest, opts *Options) error {
	if !req.Cursor.IsZero() {
		// Behind the head: the answer is in history, no subscription
		// needed. This is the common case of a client polling in a loop.
		frames, head, err := h.History(r.Context(), req.SubscribeRequest)
		if err != nil {
			return err
		}
		if len(frames) > 0 {
			return writeLongPoll(w, frames, lastID(head, frames), req.Array)
		}
	}
	sub, q, err := subscribe(r, h, req.SubscribeRequest)
	if err != nil {
		return err
	}
	frames, ended := q.Drain(nil, 0)
	if len(frames) > 0 || ended != nil || req.Wait <= 0 {
		defer sub.Close()
		return writeLongPoll(w, frames, lastID(sub.Start(), frames), req.Array)
	}
	// Nothing yet: the request is held, by the goroutine a Handoff names.
	wait := func() error {
		defer sub.Close()
		frames := holdLongPoll(r, q, req.Wait, opts)
		return writeLongPoll(w, frames, lastID(sub.Start(), frames), req.Array)
	}
	if handOver(r, wait) {
		return nil
	}
	return wait()
}

// holdLongPoll waits for the first frames, the end of the wait, or the
// unload of the handler (then answers a reconnect notice after the close
// delay, like the streaming transports).
func holdLongPoll(r *http.Request, q *hub.Queue, wait time.Duration, opts *Options) []*message.Message {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var closeTimer <-chan time.Time
	unload := opts.Unload
	for {
		select {
		case <-q.Ready():
			if frames, ended := q.Drain(nil, 0); len(frames) > 0 || ended != nil {
				return frames
			}
		case <-timer.C:
			frames, _ := q.Drain(nil, 0)
			return frames
		case <-unload:
			unload = nil
			closeTimer = time.After(opts.closeDelay())
		case <-closeTimer:
			frames, _ := q.Drain(nil, 0)
			return append(frames, reconnectNotice(reasonUnload))
		case <-r.Context().Done():
			if grantExpired(r) {
				frames, _ := q.Drain(nil, 0)
				return append(frames, reconnectNotice(reasonExpired))
			}
			return nil
		}
	}
}

// lastID is the cursor the client sends next: the newest message answered,
// or where the subscription started when none came. Starting at the hub's
// head rather than echoing an old cursor keeps a quiet channel's cursor from
// falling behind what the store can still prove complete.
func lastID(start message.Cursor, frames []*message.Message) message.Cursor {
	last := start
	for _, m := range frames {
		if !m.IsNotice() && (m.ID.Epoch != last.Epoch || m.ID.Seq > last.Seq) {
			last = m.ID
		}
	}
	return last
}

func writeLongPoll(w http.ResponseWriter, frames []*message.Message, last message.Cursor, array bool) error {
	// The wrapping and the last id (an epoch of up to 16 characters and a
	// 20-digit seq) fit in 64 bytes: the body is allocated once.
	size := 64
	for _, m := range frames {
		size += len(m.Envelope()) + 1
	}
	body := make([]byte, 0, size)
	if !array {
		body = append(body, `{"messages":`...)
	}
	body = append(body, '[')
	for i, m := range frames {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, m.Envelope()...)
	}
	body = append(body, ']')
	if !array {
		body = append(body, `,"last_id":"`...)
		body = last.AppendText(body)
		body = append(body, `"}`...)
	}
	body = append(body, '\n')
	setStreamHeaders(w, "application/json")
	_, err := w.Write(body)
	return err
}
