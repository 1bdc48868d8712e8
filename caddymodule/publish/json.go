package publish

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/cometbox/cometbox/caddymodule/message"
)

// jsonMessage is one element of a JSON batch.
type jsonMessage struct {
	Channel string `json:"channel"`
	Event   string `json:"event"`
	Type    string `json:"type"`
	// Data stays raw so that numbers keep their precision and an object
	// keeps its key order; Normalize only compacts it.
	Data json.RawMessage `json:"data"`
}

// jsonFields is what an unknown-field error says a message may hold.
const jsonFields = "a message has only channel, event, type and data"

// parseJSON reads `{"messages":[...]}` or a bare array. The array is read
// one element at a time, so a batch over MaxBatch stops at the first element
// too many rather than after the whole body has been decoded.
func parseJSON(b *builder, body []byte) error {
	// encoding/json would turn invalid UTF-8 in a string into U+FFFD and copy
	// it through json.RawMessage untouched; neither is what was sent, so the
	// body is refused whole (RFC 8259 §8.1: JSON text is UTF-8).
	if !utf8.Valid(body) {
		return errors.New("body is not valid UTF-8 (RFC 8259 §8.1)")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	tok, err := dec.Token()
	if err == io.EOF {
		return nil // ParseBatch reports the empty batch
	}
	if err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	switch tok {
	case json.Delim('['):
		err = readJSONArray(b, dec)
	case json.Delim('{'):
		err = readJSONWrapper(b, dec)
	default:
		err = errors.New(`body must be {"messages":[...]} or an array of messages`)
	}
	if err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// readJSONWrapper reads the rest of `{"messages":[...]}` after its '{'.
// The key is matched exactly, unlike encoding/json's case-insensitive field
// names, since nothing but this one key is meant to be there.
func readJSONWrapper(b *builder, dec *json.Decoder) error {
	seen := false
	for dec.More() {
		tok, err := jsonToken(dec)
		if err != nil {
			return err
		}
		key, _ := tok.(string) // inside an object More guarantees a key
		if key != "messages" {
			return fmt.Errorf(`unknown field %q; the body holds only "messages"`, key)
		}
		if seen {
			return errors.New(`"messages" given twice`)
		}
		seen = true
		if tok, err = jsonToken(dec); err != nil {
			return err
		}
		if tok != json.Delim('[') {
			return errors.New(`"messages" must be an array`)
		}
		if err := readJSONArray(b, dec); err != nil {
			return err
		}
	}
	if _, err := jsonToken(dec); err != nil { // the closing '}'
		return err
	}
	if !seen {
		return errors.New(`body has no "messages" array`)
	}
	return nil
}

// readJSONArray reads the elements of an array after its '[', and the ']'.
func readJSONArray(b *builder, dec *json.Decoder) error {
	for i := 0; dec.More(); i++ {
		if len(b.drafts) == MaxBatch {
			return errTooMany
		}
		var m jsonMessage
		if err := dec.Decode(&m); err != nil {
			return fmt.Errorf("message %d: %w", i, jsonError(err))
		}
		d, err := m.draft()
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if err := b.add(i, d); err != nil {
			return err
		}
	}
	if _, err := jsonToken(dec); err != nil { // the closing ']'
		return err
	}
	return nil
}

// jsonToken reads the next token inside a value, where the end of the body
// is a truncated value rather than the plain io.EOF Token reports.
func jsonToken(dec *json.Decoder) (json.Token, error) {
	tok, err := dec.Token()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return tok, nil
}

// draft turns m into a draft. String data is text of m's type (text/plain
// when none is given), or, when the type is a JSON type, the JSON text the
// string holds; any other value is JSON data as it stands.
func (m *jsonMessage) draft() (message.Draft, error) {
	d := message.Draft{Channel: m.Channel, Event: m.Event, Type: m.Type}
	if m.Data == nil {
		return d, errors.New("data is missing")
	}
	if m.Data[0] == '"' {
		var s string
		if err := json.Unmarshal(m.Data, &s); err != nil {
			return d, fmt.Errorf("data: %w", err)
		}
		d.Data = []byte(s)
		return d, nil
	}
	switch {
	case d.Type == "":
		d.Type = "application/json"
	case !message.IsJSONType(d.Type):
		return d, fmt.Errorf("data is a JSON %s but type %s is not a JSON type; send the data as a string", jsonKind(m.Data[0]), d.Type)
	}
	d.Data = m.Data
	return d, nil
}

// jsonKind names the kind of JSON value that starts with c.
func jsonKind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	}
	return "number"
}

// jsonError rewrites encoding/json's errors about one message in the terms
// of the batch format rather than of Go types.
func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" {
			return fmt.Errorf("must be an object, not a JSON %s", typeErr.Value)
		}
		return fmt.Errorf("%s must be a string, not a JSON %s", typeErr.Field, typeErr.Value)
	}
	// DisallowUnknownFields reports with a plain error value, so its text is
	// the only way to tell it apart.
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("unknown field %s; %s", field, jsonFields)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	return err
}
