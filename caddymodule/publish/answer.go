package publish

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Result is what a publish answers for one stored message.
type Result struct {
	// ID is the message's id, `{epoch}-{seq}`.
	ID string
	// Channel is the channel the message went to.
	Channel string
	// Subscribers is how many subscribers were connected to the channel
	// when the message was published (SPEC §5).
	Subscribers int
}

// jsonResult is Result as the JSON answer spells it.
type jsonResult struct {
	ID          string `json:"id"`
	Channel     string `json:"channel"`
	Subscribers int    `json:"subscribers"`
}

// xmlHeader opens every XML answer. The encoding is named, not left to the
// default, because a client may have sent its request in another one.
const xmlHeader = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

// ContentTypeFor is the media type of the answer to a request of format f.
// A form is answered in JSON: there is no form encoding of an answer that a
// browser or a script would read.
func ContentTypeFor(f Format) string {
	if f == FormatXML {
		return "application/xml; charset=utf-8"
	}
	return "application/json"
}

// WriteResults writes the answer to a publish in the format of its request
// (SPEC §5): for a single publish (batch false) exactly one result as
// `{"id","channel","subscribers"}`, for a batch `{"messages":[...]}`; in XML
// `<message id channel subscribers/>`, several inside `<messages>`. The
// answer is written with one Write, ending in a line break.
func WriteResults(w io.Writer, f Format, results []Result, batch bool) error {
	if !batch && len(results) != 1 {
		return fmt.Errorf("write results: a single publish answers one result, not %d", len(results))
	}
	var buf []byte
	var err error
	switch f {
	case FormatJSON, FormatForm:
		buf, err = appendJSONResults(nil, results, batch)
	case FormatXML:
		buf = appendXMLResults(nil, results, batch)
	default:
		err = errors.New("unknown format " + f.String())
	}
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

func appendJSONResults(buf []byte, results []Result, batch bool) ([]byte, error) {
	var v any
	if batch {
		list := make([]jsonResult, len(results))
		for i, r := range results {
			list[i] = jsonResult(r)
		}
		v = struct {
			Messages []jsonResult `json:"messages"`
		}{list}
	} else {
		v = jsonResult(results[0])
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	buf = append(buf, out...)
	return append(buf, '\n'), nil
}

func appendXMLResults(buf []byte, results []Result, batch bool) []byte {
	buf = append(buf, xmlHeader...)
	if batch {
		buf = append(buf, "<messages>"...)
	}
	for _, r := range results {
		buf = append(buf, `<message id="`...)
		buf = appendXMLAttr(buf, r.ID)
		buf = append(buf, `" channel="`...)
		buf = appendXMLAttr(buf, r.Channel)
		buf = append(buf, `" subscribers="`...)
		buf = strconv.AppendInt(buf, int64(r.Subscribers), 10)
		buf = append(buf, `"/>`...)
	}
	if batch {
		buf = append(buf, "</messages>"...)
	}
	return append(buf, '\n')
}

// appendXMLAttr appends s escaped for a double-quoted attribute value. Ids
// and channel names never need it today; the escaping keeps the answer
// well-formed should either alphabet ever grow.
func appendXMLAttr(buf []byte, s string) []byte {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s)) // a bytes.Buffer never fails
	return append(buf, b.Bytes()...)
}
