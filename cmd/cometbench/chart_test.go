package main

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChartRendersTableAndWellFormedSVG(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, r report) {
		if err := r.writeJSON(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	idle := func(target string, perSub float64) report {
		return report{Workload: "idle-sse", Target: target, Transport: "sse", Subscribers: 10000, ConnectionsHeld: 10000, RSSPerSubKiB: perSub}
	}
	fan := func(target string, rate, p99 float64) report {
		r := report{Workload: "fanout-100B", Target: target, Transport: "sse", Subscribers: 10000, ConnectionsHeld: 10000, Messages: 100, Size: 100, DeliveriesPS: rate}
		r.LatencyMs.P99 = p99
		return r
	}
	write("a.json", idle(targetCometbox, 1.5))
	write("b.json", idle(targetNchan, 10))
	write("c.json", fan(targetPushpin, 33000, 284))
	write("d.json", fan(targetNchan, 118000, 151))
	write("e.json", fan(targetCometbox, 141600, 100))

	md, svg := filepath.Join(dir, "t.md"), filepath.Join(dir, "c.svg")
	if code := runChart([]string{"-md", md, "-svg", svg, dir}); code != 0 {
		t.Fatalf("chart exit code %d", code)
	}
	table, _ := os.ReadFile(md)
	for _, want := range []string{
		"| idle-sse | cometbox | 10000 |", "0.15×", // memory vs Nchan
		"| fanout-100B | cometbox | 10000 | 141,600 | 1.20× |",
		"| fanout-100B | pushpin |",
	} {
		if !strings.Contains(string(table), want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if i, j := strings.Index(string(table), "| fanout-100B | cometbox"), strings.Index(string(table), "| fanout-100B | nchan"); i < 0 || j < i {
		t.Error("cometbox does not come before its peers")
	}
	b, _ := os.ReadFile(svg)
	dec := xml.NewDecoder(strings.NewReader(string(b)))
	rects := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// Background, 3 panels (memory, rate, p99), 2 + 3 + 3 bars.
	if rects != 1+3+8 {
		t.Errorf("SVG has %d rects, want 12", rects)
	}
}

func TestOriginAnswersWithGripHold(t *testing.T) {
	srv := httptest.NewServer(originHandler())
	defer srv.Close()
	for _, tc := range []struct{ query, ctype, body string }{
		{"?format=sse", "text/event-stream", ": ok\n\n"},
		{"?format=stream", "application/x-ndjson", "\n"},
	} {
		resp, err := http.Get(srv.URL + "/sub/bench" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Header.Get("Grip-Hold") != "stream" || resp.Header.Get("Grip-Channel") != "bench" ||
			resp.Header.Get("Content-Type") != tc.ctype || string(body) != tc.body {
			t.Errorf("%s: headers %v, body %q", tc.query, resp.Header, body)
		}
	}
}

func TestPushpinPublishItemsFrameTheTransport(t *testing.T) {
	for _, tc := range []struct{ transport, content string }{
		{transportSSE, "data: cb1.x\n\n"},
		{transportStream, "cb1.x\n"},
	} {
		b, err := pushpinItems("bench", tc.transport, []byte("cb1.x"))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Items []struct {
				Channel string
				Formats map[string]struct{ Content string }
			}
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Items) != 1 || got.Items[0].Channel != "bench" || got.Items[0].Formats["http-stream"].Content != tc.content {
			t.Errorf("%s: items %s", tc.transport, b)
		}
	}
}

func TestTargetsRefuseWhatTheyCannotDo(t *testing.T) {
	for _, tc := range []struct{ target, transport string }{
		{targetPushpin, transportWS},
		{targetPushpin, transportLongPoll},
		{"mercure", transportSSE},
		{targetCometbox, "smoke-signals"},
	} {
		if _, err := newTarget(tc.target, tc.transport, "", "", ""); err == nil {
			t.Errorf("%s over %s: want an error", tc.target, tc.transport)
		}
	}
	tg, err := newTarget(targetNchan, transportStream, "", "", "http://127.0.0.1:1/s/{channel}")
	if err != nil || tg.subURL != "http://127.0.0.1:1/s/{channel}" || tg.pubURL != "http://127.0.0.1:18081/pub?id={channel}" {
		t.Errorf("nchan with -sub-url: %+v, %v", tg, err)
	}
}

func TestParseSources(t *testing.T) {
	got, err := parseSources("127.0.0.2-127.0.0.4,127.0.1.1")
	if err != nil || len(got) != 4 || got[2].String() != "127.0.0.4" || got[3].String() != "127.0.1.1" {
		t.Errorf("parseSources = %v, %v", got, err)
	}
	for _, bad := range []string{"127.0.0.4-127.0.0.2", "::1", "127.0.0.2-127.0.1.3", "nope"} {
		if _, err := parseSources(bad); err == nil {
			t.Errorf("parseSources(%q): want an error", bad)
		}
	}
}

func TestRoundsKeepTheMedianRunAndPairTheRounds(t *testing.T) {
	run := func(target, started string, rate, p99 float64) *report {
		r := &report{Workload: "fanout-100B", Target: target, Messages: 100, DeliveriesPS: rate, Started: started}
		r.LatencyMs.P99 = p99
		return r
	}
	reps := []*report{
		run(targetCometbox, "2026-11-21T10:00:00Z", 130_000, 80),
		run(targetNchan, "2026-11-21T10:01:00Z", 100_000, 100),
		run(targetCometbox, "2026-11-21T10:02:00Z", 90_000, 120),
		run(targetNchan, "2026-11-21T10:03:00Z", 80_000, 120),
		run(targetCometbox, "2026-11-21T10:04:00Z", 120_000, 90),
		run(targetNchan, "2026-11-21T10:05:00Z", 100_000, 100),
		run(targetFloor, "2026-11-21T10:06:00Z", 150_000, 60),
		run(targetFloor, "2026-11-21T10:07:00Z", 160_000, 70),
	}
	kept, rounds := pickMedians(reps)
	if len(kept) != 3 || kept[0].DeliveriesPS != 120_000 || kept[1].DeliveriesPS != 100_000 {
		t.Fatalf("kept %d runs, cometbox %v/s, Nchan %v/s; want the medians 120000 and 100000", len(kept), kept[0].DeliveriesPS, kept[1].DeliveriesPS)
	}
	var b strings.Builder
	writeRounds(&b, kept, rounds)
	for _, want := range []string{
		"cometbox against Nchan round by round: deliveries/s 1.30×, 1.12×, 1.20×; p99 latency 0.80, 1.00, 0.90",
		// The floor ran twice: its rounds pair with Nchan's first two.
		"floor against Nchan round by round: deliveries/s 1.50×, 2.00×; p99 latency 0.60, 0.58",
	} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("rounds:\n%s\nwant a line with %q", b.String(), want)
		}
	}
}
