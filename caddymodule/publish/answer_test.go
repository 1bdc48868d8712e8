package publish

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestWriteResults(t *testing.T) {
	one := []Result{{ID: "k3x9-7", Channel: "news", Subscribers: 3}}
	two := []Result{{ID: "k3x9-8", Channel: "a", Subscribers: 0}, {ID: "k3x9-9", Channel: "b/c", Subscribers: 12}}
	tests := []struct {
		name    string
		f       Format
		results []Result
		batch   bool
		want    string
	}{
		{"json single", FormatJSON, one, false,
			`{"id":"k3x9-7","channel":"news","subscribers":3}` + "\n"},
		{"json batch", FormatJSON, two, true,
			`{"messages":[{"id":"k3x9-8","channel":"a","subscribers":0},{"id":"k3x9-9","channel":"b/c","subscribers":12}]}` + "\n"},
		{"json batch of one", FormatJSON, one, true,
			`{"messages":[{"id":"k3x9-7","channel":"news","subscribers":3}]}` + "\n"},
		{"json empty batch", FormatJSON, nil, true,
			`{"messages":[]}` + "\n"},
		{"form answers json", FormatForm, two, true,
			`{"messages":[{"id":"k3x9-8","channel":"a","subscribers":0},{"id":"k3x9-9","channel":"b/c","subscribers":12}]}` + "\n"},
		{"xml single", FormatXML, one, false,
			`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<message id="k3x9-7" channel="news" subscribers="3"/>` + "\n"},
		{"xml batch", FormatXML, two, true,
			`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
				`<messages><message id="k3x9-8" channel="a" subscribers="0"/><message id="k3x9-9" channel="b/c" subscribers="12"/></messages>` + "\n"},
		{"xml attribute escaped", FormatXML, []Result{{ID: `a"<&`, Channel: "c", Subscribers: 1}}, false,
			`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<message id="a&#34;&lt;&amp;" channel="c" subscribers="1"/>` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w countingWriter
			if err := WriteResults(&w, tt.f, tt.results, tt.batch); err != nil {
				t.Fatal(err)
			}
			if got := w.buf.String(); got != tt.want {
				t.Errorf("answer =\n%s\nwant\n%s", got, tt.want)
			}
			if w.writes != 1 {
				t.Errorf("answer took %d writes, want 1", w.writes)
			}
		})
	}
}

// TestWriteResultsXMLReadsBack decodes the XML answer with encoding/xml, so
// the format is checked to be well-formed and not only to match a string.
func TestWriteResultsXMLReadsBack(t *testing.T) {
	results := []Result{{ID: "e-1", Channel: "a", Subscribers: 2}, {ID: "e-2", Channel: "b", Subscribers: 0}}
	var buf bytes.Buffer
	if err := WriteResults(&buf, FormatXML, results, true); err != nil {
		t.Fatal(err)
	}
	var got struct {
		XMLName  xml.Name `xml:"messages"`
		Messages []struct {
			ID          string `xml:"id,attr"`
			Channel     string `xml:"channel,attr"`
			Subscribers int    `xml:"subscribers,attr"`
		} `xml:"message"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Messages) != 2 || got.Messages[1].ID != "e-2" || got.Messages[0].Subscribers != 2 {
		t.Fatalf("read back %+v", got)
	}
}

func TestWriteResultsRejectsSingleWithoutOneResult(t *testing.T) {
	for _, n := range []int{0, 2} {
		var buf bytes.Buffer
		err := WriteResults(&buf, FormatJSON, make([]Result, n), false)
		if err == nil || !strings.Contains(err.Error(), "a single publish answers one result") {
			t.Errorf("%d results: err = %v", n, err)
		}
		if buf.Len() != 0 {
			t.Errorf("%d results: wrote %q before failing", n, buf.String())
		}
	}
}

func TestWriteResultsRejectsUnknownFormat(t *testing.T) {
	err := WriteResults(io.Discard, Format(9), []Result{{}}, false)
	if err == nil || !strings.Contains(err.Error(), "unknown format Format(9)") {
		t.Fatalf("err = %v", err)
	}
}

func TestWriteResultsReturnsWriteError(t *testing.T) {
	errBroken := errors.New("broken pipe")
	err := WriteResults(failingWriter{errBroken}, FormatJSON, []Result{{}}, false)
	if !errors.Is(err, errBroken) {
		t.Fatalf("err = %v, want it to wrap %v", err, errBroken)
	}
}

func TestContentTypeFor(t *testing.T) {
	tests := []struct {
		f    Format
		want string
	}{
		{FormatJSON, "application/json"},
		{FormatXML, "application/xml; charset=utf-8"},
		{FormatForm, "application/json"},
	}
	for _, tt := range tests {
		if got := ContentTypeFor(tt.f); got != tt.want {
			t.Errorf("ContentTypeFor(%v) = %q, want %q", tt.f, got, tt.want)
		}
	}
}

type countingWriter struct {
	buf    bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.buf.Write(p)
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }
