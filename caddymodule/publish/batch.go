// Package publish reads what a publisher sends to `POST {prefix}/pub` and
// writes the answer (SPEC §5). A batch arrives as JSON, as XML (the original
// cometbox wire format) or as an HTML form; each is turned into the same
// normalized message.Draft values, so the hub never learns which format a
// message came in. A batch is all-or-nothing: one bad message fails it whole,
// because the store keeps a batch whole or not at all.
//
// The package never imports Caddy; the handler passes it a body it has
// already bounded by max_body_size.
package publish

import (
	"errors"
	"fmt"
	"mime"
	"strings"

	"github.com/cometbox/cometbox/caddymodule/message"
)

// MaxBatch is the most messages one batch may hold, counted after a
// multi-channel XML or form message has been split into one message per
// channel: each of them is stored and answered on its own.
const MaxBatch = 1000

// Format is the wire format of a batch request, and so of its answer.
type Format int

// The formats a batch may come in. The zero value is JSON, the format of
// every answer that has no reason to be anything else.
const (
	FormatJSON Format = iota
	FormatXML
	FormatForm
)

// String names f as a short lower-case word, for logs and errors.
func (f Format) String() string {
	switch f {
	case FormatJSON:
		return "json"
	case FormatXML:
		return "xml"
	case FormatForm:
		return "form"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// accepted is what an error about the Content-Type tells the publisher to
// send instead.
const accepted = "application/json (or +json), application/xml, text/xml (or +xml) or application/x-www-form-urlencoded"

// FormatOf tells which batch format a Content-Type names. It is what
// ParseBatch dispatches on, exported so a handler can pick the answer format
// of a request it rejects before parsing.
func FormatOf(contentType string) (Format, error) {
	if contentType == "" {
		return 0, fmt.Errorf("no content type; send %s", accepted)
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, fmt.Errorf("content type %q: %w", contentType, err)
	}
	// Every format is read as UTF-8 (RFC 8259 §8.1 requires it of JSON);
	// a body declared in another charset would be misread, not converted.
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		return 0, fmt.Errorf("charset %q is not supported; send UTF-8", cs)
	}
	switch {
	case mediaType == "application/json" || strings.HasSuffix(mediaType, "+json"):
		return FormatJSON, nil
	case mediaType == "application/xml" || mediaType == "text/xml" || strings.HasSuffix(mediaType, "+xml"):
		return FormatXML, nil
	case mediaType == "application/x-www-form-urlencoded":
		return FormatForm, nil
	}
	return 0, fmt.Errorf("content type %s is not accepted for a batch; send %s", mediaType, accepted)
}

// ParseBatch reads a batch body of the given Content-Type. Every draft it
// returns has passed Normalize, in the order the publisher sent them; a
// message sent to several channels comes back as one draft per channel.
//
// The format is returned even with an error, when the Content-Type named
// one, so that the handler can answer in kind. Errors about one message name
// it by its index in the request, counting from 0 as a JSON array does:
// `message 3: channel name is empty`.
func ParseBatch(contentType string, body []byte) ([]message.Draft, Format, error) {
	f, err := FormatOf(contentType)
	if err != nil {
		return nil, f, err
	}
	var b builder
	switch f {
	case FormatJSON:
		err = parseJSON(&b, body)
	case FormatXML:
		err = parseXML(&b, body)
	case FormatForm:
		err = parseForm(&b, body)
	}
	if err != nil {
		return nil, f, err
	}
	if len(b.drafts) == 0 {
		return nil, f, errors.New("batch is empty; send at least one message")
	}
	return b.drafts, f, nil
}

// builder collects the drafts of one batch. Each format's parser hands it
// drafts as it reads them, so that the batch cap stops a long body early
// instead of after it has all been decoded.
type builder struct {
	drafts []message.Draft
}

// errTooMany is returned once a batch would hold more than MaxBatch drafts.
var errTooMany = fmt.Errorf("batch holds more than %d messages (a message sent to several channels counts once per channel)", MaxBatch)

// add normalizes d and appends it; index is the message's position in the
// request, for the error.
func (b *builder) add(index int, d message.Draft) error {
	if len(b.drafts) == MaxBatch {
		return errTooMany
	}
	if err := normalize(&d); err != nil {
		return fmt.Errorf("message %d: %w", index, err)
	}
	b.drafts = append(b.drafts, d)
	return nil
}

// normalize is message.Draft.Normalize plus what a batch needs on top. A
// single publish takes its type from a Content-Type header, which net/http
// has already parsed as a header; a batch takes it from the body, where it
// could hold anything, so it is checked to be a media type without control
// characters before it is echoed to subscribers.
func normalize(d *message.Draft) error {
	if err := d.Normalize(); err != nil {
		return err
	}
	if !validMediaType(d.Type) {
		return fmt.Errorf("type %q is not a valid media type", d.Type)
	}
	return nil
}

// validMediaType reports whether s is `type/subtype` with optional
// parameters (RFC 9110 §8.3.1). mime.ParseMediaType alone would also take a
// bare token, since it parses Content-Disposition too, and would let a
// control character through inside a quoted parameter value.
func validMediaType(s string) bool {
	mediaType, _, err := mime.ParseMediaType(s)
	if err != nil {
		return false
	}
	if typ, subtype, ok := strings.Cut(mediaType, "/"); !ok || typ == "" || subtype == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// channelSet drops a channel named twice in one message: the publisher
// means one message to that channel, not two, as a subscription to "a,a"
// is a subscription to "a" (message.ParseChannelList). It never grows past
// MaxBatch+1 names, since the builder fails the batch by then.
type channelSet map[string]struct{}

// addNew reports whether name was not in s yet, and adds it.
func (s channelSet) addNew(name string) bool {
	if _, ok := s[name]; ok {
		return false
	}
	s[name] = struct{}{}
	return true
}
