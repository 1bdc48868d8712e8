package publish

import (
	"bytes"
	"testing"

	"github.com/cometbox/cometbox/caddymodule/message"
)

// checkDrafts holds what ParseBatch promises of any batch it accepts: a
// bounded, non-empty list of drafts with valid channels and events, and JSON
// data on one line, as the envelope and SSE framing need.
func checkDrafts(t *testing.T, drafts []message.Draft, err error) {
	t.Helper()
	if err != nil {
		if drafts != nil {
			t.Fatalf("drafts returned with the error %v", err)
		}
		return
	}
	if len(drafts) == 0 || len(drafts) > MaxBatch {
		t.Fatalf("accepted a batch of %d drafts", len(drafts))
	}
	for i, d := range drafts {
		if err := message.ValidateChannel(d.Channel); err != nil {
			t.Fatalf("draft %d: channel %q: %v", i, d.Channel, err)
		}
		if err := message.ValidateEvent(d.Event); err != nil {
			t.Fatalf("draft %d: event %q: %v", i, d.Event, err)
		}
		if d.Type == "" {
			t.Fatalf("draft %d has no type", i)
		}
		if message.IsJSONType(d.Type) && bytes.ContainsAny(d.Data, "\n\r") {
			t.Fatalf("draft %d: JSON data holds a raw line break: %q", i, d.Data)
		}
		// Normalizing a normalized draft must change nothing.
		again := d
		if err := again.Normalize(); err != nil {
			t.Fatalf("draft %d does not normalize again: %v", i, err)
		}
		if !bytes.Equal(again.Data, d.Data) || again.Type != d.Type {
			t.Fatalf("draft %d changed when normalized again", i)
		}
	}
}

func FuzzParseJSON(f *testing.F) {
	for _, seed := range []string{
		`[{"channel":"a","data":"x"}]`,
		`{"messages":[{"channel":"a","event":"e","type":"application/json","data":"{\"a\": 1}"},{"channel":"b/c","data":{"k":[1,2.5e3,null]}}]}`,
		`[{"channel":"a","type":"text/html","data":"<b>\u2028</b>"}]`,
		`[{"channel":"a","data":[[[["deep"]]]]}] `,
		`[{"channel":"a","data":1,"x":2}]`,
		`{"messages":[],"messages":[]}`,
		`[{"channel":"a","data":1}] []`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		drafts, _, err := ParseBatch(ctJSON, body)
		checkDrafts(t, drafts, err)
	})
}

func FuzzParseXML(f *testing.F) {
	for _, seed := range []string{
		`<message channel="a" event="e">hello &amp; <![CDATA[<raw>]]></message>`,
		`<?xml version="1.0"?><messages><message channel="a,b">1</message><message channel="c"><p x='1'>t</p><br/></message></messages>`,
		"\ufeff<message channel=\"a\"><!-- c --></message>",
		`<!DOCTYPE m [<!ENTITY x "y">]><message channel="a">&x;</message>`,
		`<message channel="a"><?pi x?></message>`,
		`<message channel="a" xmlns:p="urn:p"><p:b/></message>`,
		`<messages><message channel="a">&#x1F600;&#65;</message></messages>`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		drafts, _, err := ParseBatch(ctXML, body)
		checkDrafts(t, drafts, err)
		for i, d := range drafts {
			if d.Type != "text/plain" && d.Type != "application/xml" {
				t.Fatalf("draft %d has type %q", i, d.Type)
			}
		}
	})
}

func FuzzParseForm(f *testing.F) {
	for _, seed := range []string{
		"channel=a&data=x",
		"channel=a&channel=b%2Fc&event=e&data=a+b%0A",
		"channel=a&type=application/json&data=%7B+%22a%22%3A+1+%7D",
		"channel=a&data=x&data=y",
		"channel=a;data=x",
		"channel=a&type=text/plain%3B+charset%3Dutf-8&data=%E2%82%AC",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		drafts, _, err := ParseBatch(ctForm, body)
		checkDrafts(t, drafts, err)
	})
}
