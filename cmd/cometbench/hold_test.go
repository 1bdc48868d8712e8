package main

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestBodyDecoderUndoesChunkingSplitAnywhere(t *testing.T) {
	wire := "6\r\nhello \r\n5;ext=1\r\nworld\r\n1\r\n\n\r\n0\r\n\r\n"
	for split := 1; split < len(wire); split++ {
		d := newBodyDecoder(&http.Response{TransferEncoding: []string{"chunked"}})
		var got strings.Builder
		out := func(b []byte) error { got.Write(b); return nil }
		err1 := d.feed([]byte(wire[:split]), out)
		err2 := d.feed([]byte(wire[split:]), out)
		err := errors.Join(err1, err2)
		if got.String() != "hello world\n" || !errors.Is(err, errBodyEnded) {
			t.Fatalf("split at %d: got %q, %v; want %q and the end of the body", split, got.String(), err, "hello world\n")
		}
	}
}

func TestBodyDecoderRejectsBadSize(t *testing.T) {
	d := newBodyDecoder(&http.Response{TransferEncoding: []string{"chunked"}})
	if err := d.feed([]byte("zz\r\nab\r\n"), func([]byte) error { return nil }); err == nil {
		t.Error("bad chunk size: want an error")
	}
}

func TestBodyDecoderPassesIdentityBodies(t *testing.T) {
	d := newBodyDecoder(&http.Response{})
	var got []byte
	_ = d.feed([]byte("data: x\n\n"), func(b []byte) error { got = append(got, b...); return nil })
	if string(got) != "data: x\n\n" {
		t.Errorf("identity body = %q", got)
	}
}

func TestLineSplitterKeepsPartialLines(t *testing.T) {
	l := lineSplitter{max: 64}
	var lines []string
	collect := func(b []byte) error { lines = append(lines, string(b)); return nil }
	for _, piece := range []string{"id: 1\r\nda", "ta: he", "llo\n", "\n", ": hb\n"} {
		if err := l.feed([]byte(piece), collect); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"id: 1", "data: hello", "", ": hb"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("lines = %q, want %q", lines, want)
	}
	if err := l.feed([]byte(strings.Repeat("x", 65)), collect); err == nil {
		t.Error("a line over the limit: want an error")
	}
}
