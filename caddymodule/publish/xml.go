package publish

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cometbox/cometbox/caddymodule/message"
)

// errDTD is the answer to any `<!DOCTYPE`, `<!ENTITY` or other markup
// declaration. encoding/xml never expands entities a DTD defines, but it
// would let them through as a Directive token; refusing the DTD outright
// makes the billion-laughs and XXE inputs fail loudly instead of being
// half-read, and keeps anything downstream from ever seeing one.
var errDTD = errors.New("DTDs are not accepted: <!DOCTYPE>, <!ENTITY> and other markup declarations are refused")

// xmlReader reads one XML batch body token by token. It keeps the body so
// that a payload with child elements can be taken verbatim, byte for byte,
// rather than re-encoded by encoding/xml, which would rewrite namespaces,
// quotes and empty elements.
type xmlReader struct {
	dec    *xml.Decoder
	body   []byte
	tokens int   // tokens read so far, to place the <?xml?> declaration
	start  int64 // offset of the token most recently read
}

// parseXML reads `<message channel="a" event="e">payload</message>` or
// several of those inside `<messages>`.
func parseXML(b *builder, body []byte) error {
	// XML 1.0 §4.3.3 lets a UTF-8 entity start with a byte order mark;
	// encoding/xml would read it as text before the declaration.
	body = bytes.TrimPrefix(body, []byte("\ufeff"))
	dec := xml.NewDecoder(bytes.NewReader(body))
	// Strict with no Entity map: only the five predefined entities and
	// character references are decoded, any other `&name;` is an error.
	// No CharsetReader either, so a declared encoding other than UTF-8 is
	// refused rather than guessed at.
	dec.Strict = true
	dec.Entity = nil
	x := &xmlReader{dec: dec, body: body}

	seenRoot := false
	for {
		tok, err := x.next()
		if err == io.EOF {
			return nil // no root at all: ParseBatch reports the empty batch
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if seenRoot {
				return errors.New("more than one root element; put several <message> elements inside one <messages>")
			}
			seenRoot = true
			switch {
			case t.Name.Space == "" && t.Name.Local == "message":
				err = x.readMessage(b, 0, t)
			case t.Name.Space == "" && t.Name.Local == "messages":
				err = x.readMessages(b, t)
			default:
				err = fmt.Errorf("root element <%s> is not accepted; send <message> or <messages>", xmlName(t.Name))
			}
			if err != nil {
				return err
			}
		case xml.CharData:
			if !isXMLSpace(t) {
				return errors.New("text outside the root element")
			}
		}
	}
}

// next returns the next token, refusing what a batch must never hold. It
// returns io.EOF only at the end of a well-formed document.
func (x *xmlReader) next() (xml.Token, error) {
	x.start = x.dec.InputOffset()
	tok, err := x.dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, err
		}
		// A DTD encoding/xml cannot even read (an unterminated internal
		// subset, say) must still be reported as a DTD.
		if rest := x.body[x.start:]; isDeclaration(rest) {
			return nil, errDTD
		}
		// Without a CharsetReader encoding/xml refuses any declared
		// encoding but UTF-8, in terms of its own API.
		if strings.Contains(err.Error(), "CharsetReader") {
			return nil, errors.New("only UTF-8 is accepted; the <?xml?> declaration names another encoding")
		}
		return nil, fmt.Errorf("invalid XML: %w", err)
	}
	first := x.tokens == 0
	x.tokens++
	switch t := tok.(type) {
	case xml.Directive:
		return nil, errDTD
	case xml.ProcInst:
		// The declaration must open the document (XML 1.0 §2.8), so
		// `<?xml?>` anywhere else is an instruction like any other.
		if !first || x.start != 0 || t.Target != "xml" {
			return nil, fmt.Errorf("processing instruction <?%s?> is not accepted; only a leading <?xml ...?> declaration is", t.Target)
		}
	}
	return tok, nil
}

// isDeclaration reports whether markup starts with `<!` and is neither a
// comment nor a CDATA section.
func isDeclaration(markup []byte) bool {
	return bytes.HasPrefix(markup, []byte("<!")) &&
		!bytes.HasPrefix(markup, []byte("<!--")) &&
		!bytes.HasPrefix(markup, []byte("<![CDATA["))
}

// readMessages reads the <message> children of a <messages> root.
func (x *xmlReader) readMessages(b *builder, root xml.StartElement) error {
	if len(root.Attr) > 0 {
		return fmt.Errorf("unknown attribute %s on <messages>; it takes none", xmlName(root.Attr[0].Name))
	}
	for i := 0; ; {
		tok, err := x.next()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space != "" || t.Name.Local != "message" {
				return fmt.Errorf("<messages> holds only <message> elements, not <%s>", xmlName(t.Name))
			}
			if err := x.readMessage(b, i, t); err != nil {
				return err
			}
			i++
		case xml.CharData:
			if !isXMLSpace(t) {
				return errors.New("text inside <messages> but outside any <message>")
			}
		case xml.EndElement:
			return nil
		}
	}
}

// readMessage reads one <message> after its start tag, up to and including
// its end tag, and adds one draft per channel it names.
func (x *xmlReader) readMessage(b *builder, index int, start xml.StartElement) error {
	var channels, event string
	var hasChannel, hasEvent bool
	for _, a := range start.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "channel" && !hasChannel:
			channels, hasChannel = a.Value, true
		case a.Name.Space == "" && a.Name.Local == "event" && !hasEvent:
			event, hasEvent = a.Value, true
		case a.Name.Space == "" && (a.Name.Local == "channel" || a.Name.Local == "event"):
			// XML 1.0 §3.1 forbids a repeated attribute; encoding/xml
			// does not check.
			return fmt.Errorf("message %d: attribute %s given twice", index, a.Name.Local)
		default:
			return fmt.Errorf("message %d: unknown attribute %s on <message>; only channel and event are accepted", index, xmlName(a.Name))
		}
	}
	if !hasChannel {
		return fmt.Errorf("message %d: no channel attribute", index)
	}

	data, typ, err := x.readPayload()
	if err != nil {
		return fmt.Errorf("message %d: %w", index, err)
	}
	seen := channelSet{}
	for channel := range strings.SplitSeq(channels, ",") {
		if !seen.addNew(channel) {
			continue
		}
		// Every channel's draft shares data: Normalize leaves non-JSON
		// data as it is, and the hub never writes to it.
		d := message.Draft{Channel: channel, Event: event, Type: typ, Data: data}
		if err := b.add(index, d); err != nil {
			return err
		}
	}
	return nil
}

// readPayload reads the content of a <message> after its start tag, and its
// end tag. Text alone (character data, CDATA sections and references, with
// comments dropped) is text/plain data, decoded; once the content holds an
// element it is application/xml data, the exact bytes between the tags.
func (x *xmlReader) readPayload() ([]byte, string, error) {
	begin := x.dec.InputOffset()
	var text []byte
	depth := 0
	hasChild := false
	for {
		tok, err := x.next()
		if err != nil {
			return nil, "", err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			hasChild = true
		case xml.EndElement:
			if depth > 0 {
				depth--
				continue
			}
			if hasChild {
				// The end tag starts where the previous token ended.
				return bytes.Clone(x.body[begin:x.start]), "application/xml", nil
			}
			if text == nil {
				text = []byte{}
			}
			return text, message.DefaultType, nil
		case xml.CharData:
			if depth == 0 && !hasChild {
				text = append(text, t...)
			}
		}
	}
}

// isXMLSpace reports whether text is only XML white space (XML 1.0 §2.3).
func isXMLSpace(text []byte) bool {
	for _, c := range text {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// xmlName writes an element or attribute name for an error message.
func xmlName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}
