// Package message defines what the hub carries: messages and notices, their
// ids and cursors, channel naming rules, and the one JSON envelope every
// transport writes (SPEC §3, §4). A message is encoded once, when it is made,
// and the same bytes are handed to every subscriber.
package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cometbox/cometbox/caddymodule/internal/wsframe"
)

// NoticePrefix starts the event name of every notice the hub sends itself.
const NoticePrefix = "comet."

// Notice names (SPEC §4). Notices carry no id, so they never move a cursor.
const (
	Reset        = "comet.reset"
	Deleted      = "comet.deleted"
	Reconnect    = "comet.reconnect"
	Subscribed   = "comet.subscribed"
	Unsubscribed = "comet.unsubscribed"
	Error        = "comet.error"
	// Reply carries a backend's answer to one WebSocket client message.
	Reply = "comet.reply"
)

// Draft is a message as a publisher sent it, before the store gives it an id.
type Draft struct {
	Channel string
	Event   string
	// Type is the publisher's media type; JSON types carry Data as a JSON
	// value, others as a string.
	Type string
	Data []byte
}

// DefaultType is the type of a message published without a Content-Type.
const DefaultType = "text/plain"

// Normalize validates d and brings it to the form the envelope needs: JSON
// data compacted onto one line (a raw line break would split an NDJSON line
// or an SSE field), text data checked to be UTF-8, a missing type defaulted.
func (d *Draft) Normalize() error {
	if err := ValidateChannel(d.Channel); err != nil {
		return err
	}
	if err := ValidateEvent(d.Event); err != nil {
		return err
	}
	return d.NormalizePayload()
}

// NormalizePayload validates and normalizes Type and Data only: for
// payloads that belong to no channel, such as a backend's reply to a
// WebSocket client.
func (d *Draft) NormalizePayload() error {
	if d.Type == "" {
		d.Type = DefaultType
	}
	if len(d.Type) > 255 || !utf8.ValidString(d.Type) {
		return errors.New("content type is not a valid media type")
	}
	if IsJSONType(d.Type) {
		// json.Compact copies the bytes of strings through unchecked.
		if !utf8.Valid(d.Data) {
			return errors.New("data is not valid UTF-8 (RFC 8259 §8.1)")
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, d.Data); err != nil {
			return fmt.Errorf("data is not valid JSON although its type is %s: %w", d.Type, err)
		}
		d.Data = compact.Bytes()
		return nil
	}
	if !utf8.Valid(d.Data) {
		return errors.New("data is not valid UTF-8 text; send JSON or encode binary data (base64) first")
	}
	return nil
}

// IsJSONType reports whether a media type is JSON (application/json or a
// +json structured syntax suffix, RFC 6839).
func IsJSONType(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}

// Message is one stored message, or a notice when ID is zero. It is
// immutable once made: the hub shares one *Message among all subscribers.
type Message struct {
	ID      Cursor
	Channel string
	Event   string
	Type    string
	Data    []byte
	// Time is when the hub accepted the message, in Unix milliseconds.
	Time int64
	// Ref echoes a client's request reference on a WebSocket reply or
	// error notice, so the client can match answers to requests.
	Ref string

	// frame holds, in one buffer, the message as an SSE event: the SSE
	// fields (id, event, "data: "), the envelope and its '\n' (the NDJSON
	// line, frame[lineStart:lineEnd]), and the blank line ending the event.
	// Every transport writes a slice of it, so a message is encoded once and
	// held once.
	frame     []byte
	lineStart int
	lineEnd   int
	// wsHeader heads a WebSocket text frame whose payload is the envelope:
	// written before it, the two make the frame without a copy.
	wsHeader    [wsframe.MaxHeaderLen]byte
	wsHeaderLen uint8
}

// New makes the stored form of a normalized draft and encodes it.
func New(id Cursor, d Draft, at time.Time) *Message {
	m := &Message{ID: id, Channel: d.Channel, Event: d.Event, Type: d.Type, Data: d.Data, Time: at.UnixMilli()}
	m.encode()
	return m
}

// NewNotice makes a notice for a channel. detail, when not empty, is a
// JSON object explaining the notice (reason, status); it becomes data.
func NewNotice(channel, name string, detail map[string]any, at time.Time) *Message {
	m := &Message{Channel: channel, Event: name, Time: at.UnixMilli()}
	if detail != nil {
		m.Type = "application/json"
		m.Data, _ = json.Marshal(detail) // a map of plain values cannot fail
	}
	m.encode()
	return m
}

// NewReply makes a connection notice that carries a payload to one client:
// a backend's answer (comet.reply) or a refusal (comet.error). payload
// must be normalized; ref is the client's request reference, if any.
func NewReply(name, ref string, payload Draft, at time.Time) *Message {
	m := &Message{Event: name, Ref: ref, Type: payload.Type, Data: payload.Data, Time: at.UnixMilli()}
	m.encode()
	return m
}

// IsNotice reports whether m is a hub notice rather than a published message.
func (m *Message) IsNotice() bool { return m.ID.IsZero() }

// Envelope is the JSON envelope of m without a line break: a long-poll array
// element or a WebSocket text frame.
func (m *Message) Envelope() []byte { return m.frame[m.lineStart : m.lineEnd-1] }

// Line is the envelope followed by '\n': one NDJSON line.
func (m *Message) Line() []byte { return m.frame[m.lineStart:m.lineEnd] }

// SSE is m as one server-sent event (WHATWG HTML §9.2.6): `id:` (messages
// only), `event:` (when set), the envelope as `data:`, and the blank line
// that ends the event.
func (m *Message) SSE() []byte { return m.frame }

// WebSocketHeader is the header of the WebSocket text frame (RFC 6455
// §5.2) that carries Envelope: a server's frame, final and unmasked.
func (m *Message) WebSocketHeader() []byte { return m.wsHeader[:m.wsHeaderLen] }

// Size is roughly what m holds in memory, in bytes.
func (m *Message) Size() int { return cap(m.frame) + len(m.Data) }

func (m *Message) encode() {
	b := make([]byte, 0, 112+len(m.Channel)+2*len(m.Event)+len(m.Ref)+len(m.Type)+len(m.Data)+len(m.Data)/8)
	if !m.IsNotice() {
		b = append(b, "id: "...)
		b = m.ID.AppendText(b)
		b = append(b, '\n')
	}
	if m.Event != "" {
		b = append(b, "event: "...)
		b = append(b, m.Event...)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	m.lineStart = len(b)

	b = append(b, '{')
	if !m.IsNotice() {
		b = append(b, `"id":"`...)
		b = m.ID.AppendText(b)
		b = append(b, `",`...)
	}
	// Only a connection notice (reconnect, reply) has no channel.
	if m.Channel != "" {
		b = append(b, `"channel":`...)
		b = appendString(b, m.Channel)
		b = append(b, ',')
	}
	if m.Event != "" {
		b = append(b, `"event":`...)
		b = appendString(b, m.Event)
		b = append(b, ',')
	}
	if m.Ref != "" {
		b = append(b, `"ref":`...)
		b = appendString(b, m.Ref)
		b = append(b, ',')
	}
	if m.Type != "" {
		b = append(b, `"type":`...)
		b = appendString(b, m.Type)
		b = append(b, `,"data":`...)
		if IsJSONType(m.Type) {
			b = append(b, m.Data...)
		} else {
			b = appendString(b, string(m.Data))
		}
		b = append(b, ',')
	}
	b = append(b, `"time":`...)
	b = strconv.AppendInt(b, m.Time, 10)
	b = append(b, "}\n"...)
	m.lineEnd = len(b)
	m.frame = append(b, '\n')
	m.wsHeaderLen = uint8(len(wsframe.AppendHeader(m.wsHeader[:0], wsframe.OpText, m.lineEnd-1-m.lineStart)))
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Every control character is
// escaped, so the envelope never holds a raw line break, and so are U+2028
// and U+2029, which end lines in older JavaScript parsers.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\u2028' || r == '\u2029' || r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			if r == utf8.RuneError {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
