package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/publish"
	"github.com/cometbox/cometbox/caddymodule/store"
)

// serveChannel answers {prefix}/pub/{channel}: POST publishes the body as one
// message, GET describes the channel, DELETE drops it.
func (a *API) serveChannel(w http.ResponseWriter, r *http.Request, channel string) error {
	switch r.Method {
	case http.MethodPost, http.MethodGet, http.MethodDelete:
	default:
		return allow(w, "POST, GET, DELETE")
	}
	if err := a.authorizePublisher(r); err != nil {
		return err
	}
	if err := message.ValidateChannel(channel); err != nil {
		return &Error{Status: http.StatusBadRequest, Err: err}
	}
	switch r.Method {
	case http.MethodPost:
		return a.publishOne(w, r, channel)
	case http.MethodGet:
		info, found, err := a.Hub.Info(r.Context(), channel)
		return a.writeInfo(w, info, found, err)
	default:
		info, found, err := a.Hub.Delete(r.Context(), channel)
		return a.writeInfo(w, info, found, err)
	}
}

func (a *API) publishOne(w http.ResponseWriter, r *http.Request, channel string) error {
	body, err := a.readBody(w, r)
	if err != nil {
		return err
	}
	draft := message.Draft{
		Channel: channel,
		Event:   r.Header.Get("Comet-Event"),
		Type:    r.Header.Get("Content-Type"),
		Data:    body,
	}
	if err := draft.Normalize(); err != nil {
		return &Error{Status: http.StatusBadRequest, Err: err}
	}
	return a.publish(w, r, []message.Draft{draft}, publish.FormatJSON, false)
}

// servePublishBatch answers POST {prefix}/pub: JSON, XML or form.
func (a *API) servePublishBatch(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return allow(w, "POST")
	}
	if err := a.authorizePublisher(r); err != nil {
		return err
	}
	body, err := a.readBody(w, r)
	if err != nil {
		return err
	}
	drafts, format, err := publish.ParseBatch(r.Header.Get("Content-Type"), body)
	if err != nil {
		return &Error{Status: http.StatusBadRequest, Err: err}
	}
	return a.publish(w, r, drafts, format, true)
}

// publish stores the drafts and answers 201 when any subscriber held one of
// their channels, 202 when none did (SPEC §5).
func (a *API) publish(w http.ResponseWriter, r *http.Request, drafts []message.Draft, format publish.Format, batch bool) error {
	key := r.Header.Get("Idempotency-Key")
	if err := validateIdempotencyKey(key); err != nil {
		return err
	}
	published, _, err := a.Hub.Publish(r.Context(), drafts, key)
	if err != nil {
		return storeError(err)
	}
	results := make([]publish.Result, len(published))
	status := http.StatusAccepted
	for i, p := range published {
		results[i] = publish.Result{ID: p.Message.ID.String(), Channel: p.Message.Channel, Subscribers: p.Subscribers}
		if p.Subscribers > 0 {
			status = http.StatusCreated
		}
	}
	w.Header().Set("Content-Type", publish.ContentTypeFor(format))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return publish.WriteResults(w, format, results, batch)
}

// readBody reads a publish body, refusing one larger than MaxBodySize with
// 413 before it is stored anywhere. Exactly MaxBodySize bytes are accepted.
func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > a.MaxBodySize {
		return nil, errorf(http.StatusRequestEntityTooLarge, "request body is %d bytes; max_body_size is %d", r.ContentLength, a.MaxBodySize)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.MaxBodySize))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, errorf(http.StatusRequestEntityTooLarge, "request body is larger than max_body_size (%d bytes)", a.MaxBodySize)
	}
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "reading request body: %w", err)
	}
	return body, nil
}

// maxIdempotencyKeyLen bounds an Idempotency-Key; keys are kept in memory.
const maxIdempotencyKeyLen = 255

func validateIdempotencyKey(key string) *Error {
	if len(key) > maxIdempotencyKeyLen {
		return errorf(http.StatusBadRequest, "Idempotency-Key is longer than %d bytes", maxIdempotencyKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return errorf(http.StatusBadRequest, "Idempotency-Key must be printable ASCII without spaces")
		}
	}
	return nil
}

// storeError turns a store failure into 503, so that a publisher retries
// (with its Idempotency-Key) rather than believing the message was sent.
func storeError(err error) *Error {
	switch {
	case errors.Is(err, store.ErrUnavailable):
		return &Error{Status: http.StatusServiceUnavailable, Err: err}
	case errors.Is(err, store.ErrTooManyChannels):
		return &Error{Status: http.StatusInsufficientStorage, Err: err}
	}
	return &Error{Status: http.StatusInternalServerError, Err: err}
}

type infoBody struct {
	Channel     string `json:"channel"`
	Subscribers int    `json:"subscribers"`
	Messages    int    `json:"messages"`
	LastID      string `json:"last_id"`
}

func (a *API) writeInfo(w http.ResponseWriter, info hub.ChannelInfo, found bool, err error) error {
	if err != nil {
		return storeError(err)
	}
	if !found {
		return errorf(http.StatusNotFound, "channel %q has no history and no subscribers", info.Channel)
	}
	return writeJSON(w, http.StatusOK, infoBody{
		Channel:     info.Channel,
		Subscribers: info.Subscribers,
		Messages:    info.Messages,
		LastID:      info.LastID.String(),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return fmt.Errorf("write answer: %w", err)
	}
	return nil
}
