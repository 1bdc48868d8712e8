package message

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseCursor(t *testing.T) {
	cases := []struct {
		in   string
		want Cursor
		ok   bool
	}{
		{"", Cursor{}, true},
		{"earliest", Earliest, true},
		{"k3f9-1842", Cursor{"k3f9", 1842}, true},
		{"abc-0", Cursor{"abc", 0}, true},
		{"ABC-1", Cursor{}, false},
		{"abc-", Cursor{}, false},
		{"-1", Cursor{}, false},
		{"abc-+1", Cursor{}, false},
		{"abc-1-2", Cursor{}, false},
		{"abc-18446744073709551616", Cursor{}, false},
		{"earliest-1", Cursor{}, false},
		{"abcdefghijklmnopq-1", Cursor{}, false},
	}
	for _, tc := range cases {
		got, err := ParseCursor(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseCursor(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestChannelNameRulesSayWhichRuleFailed(t *testing.T) {
	cases := []struct{ name, reason string }{
		{"chat", ""},
		{"user.42/inbox", ""},
		{"a:b@c_d-e", ""},
		{"", "empty"},
		{strings.Repeat("x", 129), "at most 128"},
		{"a b", "byte"},
		{"a\x00b", "byte"},
		{"a//b", "empty segment"},
		{"/a", "empty segment"},
		{"a/", "empty segment"},
		{"a/./b", `"." segment`},
		{"..", `".." segment`},
		{"a/..", `".." segment`},
	}
	for _, tc := range cases {
		err := ValidateChannel(tc.name)
		if tc.reason == "" && err != nil || tc.reason != "" && (err == nil || !strings.Contains(err.Error(), tc.reason)) {
			t.Errorf("ValidateChannel(%q) = %v; want reason %q", tc.name, err, tc.reason)
		}
	}
}

func TestEnvelopeIsOneLineAndTheSameEverywhere(t *testing.T) {
	at := time.UnixMilli(1732150000123)
	cases := []struct {
		draft Draft
		want  string
	}{
		{Draft{Channel: "chat", Event: "say", Type: "application/json", Data: []byte("{\n \"text\": \"hi\"\n}")},
			`{"id":"k3f9-7","channel":"chat","event":"say","type":"application/json","data":{"text":"hi"},"time":1732150000123}`},
		{Draft{Channel: "news", Data: []byte("line one\nline two\u2028\"quoted\"\\")},
			`{"id":"k3f9-7","channel":"news","type":"text/plain","data":"line one\nline two\u2028\"quoted\"\\","time":1732150000123}`},
	}
	for _, tc := range cases {
		d := tc.draft
		if err := d.Normalize(); err != nil {
			t.Fatal(err)
		}
		m := New(Cursor{"k3f9", 7}, d, at)
		if string(m.Envelope()) != tc.want {
			t.Errorf("envelope:\n got %s\nwant %s", m.Envelope(), tc.want)
		}
		if bytes.Count(m.Line(), []byte("\n")) != 1 || !json.Valid(m.Envelope()) {
			t.Errorf("not one JSON line: %q", m.Line())
		}
		sse := string(m.SSE())
		if !strings.HasPrefix(sse, "id: k3f9-7\n") || !strings.HasSuffix(sse, string(m.Envelope())+"\n\n") || strings.Count(sse, "\n\n") != 1 {
			t.Errorf("SSE event: %q", sse)
		}
		if ws := m.WebSocketHeader(); len(ws) != 2 || ws[0] != 0x81 || int(ws[1]) != len(m.Envelope()) {
			t.Errorf("WebSocket header %x for a %d-byte envelope", ws, len(m.Envelope()))
		}
	}
	big := New(Cursor{"k3f9", 8}, Draft{Channel: "big", Type: "text/plain", Data: bytes.Repeat([]byte("b"), 70000)}, at)
	if ws := big.WebSocketHeader(); len(ws) != 10 || ws[1] != 127 {
		t.Errorf("WebSocket header %x for a %d-byte envelope", ws, len(big.Envelope()))
	}
	notice := NewNotice("chat", Reset, nil, at)
	if string(notice.Envelope()) != `{"channel":"chat","event":"comet.reset","time":1732150000123}` || string(notice.SSE()) != "event: comet.reset\ndata: "+string(notice.Line())+"\n" {
		t.Errorf("notice: %s / %q", notice.Envelope(), notice.SSE())
	}
}

func TestDraftRefusesWhatCannotBeCarried(t *testing.T) {
	cases := []struct {
		name  string
		draft Draft
	}{
		{"invalid UTF-8 text", Draft{Channel: "c", Data: []byte{0xff}}},
		{"invalid JSON", Draft{Channel: "c", Type: "application/json", Data: []byte("{")}},
		{"reserved event", Draft{Channel: "c", Event: "comet.reset", Data: []byte("x")}},
		{"event with a line break", Draft{Channel: "c", Event: "a\nb", Data: []byte("x")}},
		{"bad channel", Draft{Channel: "a b", Data: []byte("x")}},
	}
	for _, tc := range cases {
		if err := tc.draft.Normalize(); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestPatternsMatchAnyRunWithStar(t *testing.T) {
	cases := []struct {
		pattern, name string
		match         bool
	}{
		{"user.*", "user.42", true},
		{"user.*", "user.42/inbox", true},
		{"user.*", "users.42", false},
		{"*", "anything", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
	}
	for _, tc := range cases {
		if got := Pattern(tc.pattern).Match(tc.name); got != tc.match {
			t.Errorf("%q matches %q = %v", tc.pattern, tc.name, got)
		}
	}
}
