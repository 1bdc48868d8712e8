package publish

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cometbox/cometbox/caddymodule/message"
)

const (
	ctJSON = "application/json"
	ctXML  = "application/xml"
	ctForm = "application/x-www-form-urlencoded"
)

// mustParse parses body and fails the test on error.
func mustParse(t *testing.T, contentType, body string) []message.Draft {
	t.Helper()
	drafts, _, err := ParseBatch(contentType, []byte(body))
	if err != nil {
		t.Fatalf("ParseBatch(%q, %q): %v", contentType, body, err)
	}
	return drafts
}

// wantError parses body and fails the test unless it fails with an error
// that contains want, and returns no drafts.
func wantError(t *testing.T, contentType, body, want string) {
	t.Helper()
	drafts, _, err := ParseBatch(contentType, []byte(body))
	if err == nil {
		t.Fatalf("ParseBatch(%q, %.80q) = %d drafts, want an error containing %q", contentType, body, len(drafts), want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("ParseBatch(%q, %.80q) error = %q, want it to contain %q", contentType, body, err, want)
	}
	if drafts != nil {
		t.Fatalf("ParseBatch(%q, %.80q) returned %d drafts with its error", contentType, body, len(drafts))
	}
}

// draftsEqual compares drafts field by field, data as strings.
func draftsEqual(t *testing.T, got, want []message.Draft) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d drafts, want %d: %s", len(got), len(want), formatDrafts(got))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Channel != w.Channel || g.Event != w.Event || g.Type != w.Type || string(g.Data) != string(w.Data) {
			t.Errorf("draft %d = %s, want %s", i, formatDrafts(got[i:i+1]), formatDrafts(want[i:i+1]))
		}
	}
}

func formatDrafts(drafts []message.Draft) string {
	var b strings.Builder
	for _, d := range drafts {
		fmt.Fprintf(&b, "{%q %q %q %q}", d.Channel, d.Event, d.Type, d.Data)
	}
	return b.String()
}

func TestParseBatchDispatchesOnMediaType(t *testing.T) {
	bodies := map[Format]string{
		FormatJSON: `[{"channel":"a","data":"x"}]`,
		FormatXML:  `<message channel="a">x</message>`,
		FormatForm: `channel=a&data=x`,
	}
	tests := []struct {
		contentType string
		want        Format
	}{
		{"application/json", FormatJSON},
		{"application/json; charset=utf-8", FormatJSON},
		{"Application/JSON", FormatJSON},
		{"application/ld+json", FormatJSON},
		{"application/xml", FormatXML},
		{"text/xml; charset=UTF-8", FormatXML},
		{"application/atom+xml", FormatXML},
		{"application/x-www-form-urlencoded", FormatForm},
		{"application/x-www-form-urlencoded; charset=us-ascii", FormatForm},
	}
	for _, tt := range tests {
		t.Run(tt.contentType, func(t *testing.T) {
			drafts, f, err := ParseBatch(tt.contentType, []byte(bodies[tt.want]))
			if err != nil {
				t.Fatal(err)
			}
			if f != tt.want {
				t.Errorf("format = %v, want %v", f, tt.want)
			}
			draftsEqual(t, drafts, []message.Draft{{Channel: "a", Type: "text/plain", Data: []byte("x")}})
		})
	}
}

func TestParseBatchRejectsOtherMediaTypes(t *testing.T) {
	tests := []struct {
		name, contentType, want string
	}{
		{"none", "", "no content type; send application/json"},
		{"text", "text/plain", "text/plain is not accepted for a batch; send application/json"},
		{"multipart", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"},
		{"octets", "application/octet-stream", "text/xml"},
		{"malformed", "application/json; charset", "content type"},
		{"other charset", "application/json; charset=latin1", `charset "latin1" is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, tt.contentType, `[{"channel":"a","data":"x"}]`, tt.want)
		})
	}
}

func TestParseBatchRejectsEmptyBatch(t *testing.T) {
	tests := []struct {
		name, contentType, body string
	}{
		{"json empty body", ctJSON, ""},
		{"json white space", ctJSON, " \n"},
		{"json empty array", ctJSON, "[]"},
		{"json empty messages", ctJSON, `{"messages":[]}`},
		{"xml empty body", ctXML, ""},
		{"xml empty messages", ctXML, "<messages/>"},
		{"xml messages with only space", ctXML, "<messages>\n  <!-- none -->\n</messages>"},
		{"xml declaration only", ctXML, `<?xml version="1.0"?>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, tt.contentType, tt.body, "batch is empty")
		})
	}
	t.Run("form empty body", func(t *testing.T) {
		wantError(t, ctForm, "", "form has no channel")
	})
}

// manyJSON is a JSON batch of n messages, to channels c0, c1, ...
func manyJSON(n int) string {
	var b strings.Builder
	b.WriteString(`{"messages":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"channel":"c%d","data":%d}`, i, i)
	}
	b.WriteString("]}")
	return b.String()
}

// manyXML is an XML batch of n messages.
func manyXML(n int) string {
	var b strings.Builder
	b.WriteString("<messages>")
	for i := range n {
		fmt.Fprintf(&b, `<message channel="c%d">%d</message>`, i, i)
	}
	b.WriteString("</messages>")
	return b.String()
}

// channelList is "c0,c1,..." with n names, separated by sep.
func channelList(n int, sep string) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("c%d", i)
	}
	return strings.Join(names, sep)
}

func TestParseBatchCapsBatchSize(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        func(n int) string
	}{
		{"json", ctJSON, manyJSON},
		{"json bare array", ctJSON, func(n int) string { return strings.TrimSuffix(strings.TrimPrefix(manyJSON(n), `{"messages":`), "}") }},
		{"xml messages", ctXML, manyXML},
		{"xml channel list", ctXML, func(n int) string { return `<message channel="` + channelList(n, ",") + `">x</message>` }},
		{"xml channel lists across messages", ctXML, func(n int) string {
			return `<messages><message channel="` + channelList(n-1, ",") + `">x</message><message channel="last">y</message></messages>`
		}},
		{"form", ctForm, func(n int) string { return "data=x&channel=" + channelList(n, "&channel=") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustParse(t, tt.contentType, tt.body(MaxBatch)); len(got) != MaxBatch {
				t.Fatalf("a batch of MaxBatch gave %d drafts", len(got))
			}
			wantError(t, tt.contentType, tt.body(MaxBatch+1), "more than 1000 messages")
		})
	}
}

func TestParseBatchIsAllOrNothing(t *testing.T) {
	tests := []struct {
		name, contentType, body, want string
	}{
		{"json", ctJSON, `[{"channel":"a","data":1},{"channel":"b","data":2},{"channel":"","data":3}]`, "message 2: channel name is empty"},
		{"json bad event", ctJSON, `[{"channel":"a","data":1},{"channel":"b","event":"comet.reset","data":2}]`, "message 1: event names starting with"},
		{"xml", ctXML, `<messages><message channel="a">1</message><message channel="b/../c">2</message></messages>`, `message 1: channel name has a ".." segment`},
		{"xml bad channel in list", ctXML, `<messages><message channel="a">1</message><message channel="b,c d">2</message></messages>`, `message 1: channel name has the byte ' '`},
		{"form second channel", ctForm, `channel=a&channel=b%20c&data=x`, `message 1: channel name has the byte ' '`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, tt.contentType, tt.body, tt.want)
		})
	}
}

func TestParseBatchRejectsInvalidUTF8Text(t *testing.T) {
	tests := []struct {
		name, contentType, body, want string
	}{
		{"form text", ctForm, "channel=a&data=%FF%FE", "message 0: data is not valid UTF-8 text"},
		{"form json", ctForm, "channel=a&type=application/json&data=%22%FF%22", "message 0: data is not valid UTF-8"},
		{"form event", ctForm, "channel=a&data=x&event=%C3", "message 0: event name has the byte"},
		{"json body", ctJSON, "[{\"channel\":\"a\",\"data\":\"\xff\"}]", "not valid UTF-8"},
		{"xml text", ctXML, "<message channel=\"a\">\xff</message>", "invalid UTF-8"},
		// encoding/xml does not look inside comments; Normalize does.
		{"xml inner comment", ctXML, "<message channel=\"a\"><b/><!-- \xff --></message>", "message 0: data is not valid UTF-8 text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, tt.contentType, tt.body, tt.want)
		})
	}
}

func TestParseBatchRejectsInvalidType(t *testing.T) {
	tests := []struct {
		name, contentType, body, want string
	}{
		{"json not a media type", ctJSON, `[{"channel":"a","type":"plain text","data":"x"}]`, `message 0: type "plain text" is not a valid media type`},
		{"json control character", ctJSON, `[{"channel":"a","type":"text/plain; x=\"a\nb\"","data":"x"}]`, "is not a valid media type"},
		{"form not a media type", ctForm, `channel=a&type=text&data=x`, `type "text" is not a valid media type`},
		{"form too long", ctForm, `channel=a&data=x&type=text/` + strings.Repeat("x", 300), "content type is not a valid media type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, tt.contentType, tt.body, tt.want)
		})
	}
}

func TestParseBatchReturnsFormatWithError(t *testing.T) {
	_, f, err := ParseBatch("text/xml", []byte("<nope/>"))
	if err == nil || f != FormatXML {
		t.Fatalf("ParseBatch = %v, %v; want FormatXML and an error", f, err)
	}
	_, f, _ = ParseBatch("text/plain", nil)
	if f != FormatJSON {
		t.Fatalf("an unaccepted content type gave format %v; want the JSON default", f)
	}
}

func TestFormatString(t *testing.T) {
	tests := []struct {
		f    Format
		want string
	}{
		{FormatJSON, "json"},
		{FormatXML, "xml"},
		{FormatForm, "form"},
		{Format(7), "Format(7)"},
	}
	for _, tt := range tests {
		if got := tt.f.String(); got != tt.want {
			t.Errorf("Format(%d).String() = %q, want %q", int(tt.f), got, tt.want)
		}
	}
}
