package main

import (
	"flag"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// runChart reads run reports and renders the side-by-side comparison: a
// markdown table and an SVG bar chart, written by hand so the tooling needs
// nothing beyond the standard library.
func runChart(args []string) int {
	fs := flag.NewFlagSet("cometbench chart", flag.ContinueOnError)
	mdOut := fs.String("md", "", "write the markdown table here (default: stdout)")
	svgOut := fs.String("svg", "", "write the SVG chart here")
	title := fs.String("title", "cometbox vs Nchan vs Pushpin, and the floor (a bare send loop)", "chart title")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var paths []string
	for _, a := range fs.Args() {
		if st, err := os.Stat(a); err == nil && st.IsDir() {
			m, _ := filepath.Glob(filepath.Join(a, "*.json"))
			paths = append(paths, m...)
			continue
		}
		paths = append(paths, a)
	}
	var reps []*report
	for _, p := range paths {
		r, err := readReport(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cometbench chart:", err)
			return 1
		}
		reps = append(reps, r)
	}
	if len(reps) == 0 {
		fmt.Fprintln(os.Stderr, "cometbench chart: no reports given")
		return 2
	}
	reps, rounds := pickMedians(reps)
	sortReports(reps)

	var md strings.Builder
	writeMarkdown(&md, reps)
	writeRounds(&md, reps, rounds)
	if *mdOut == "" {
		fmt.Print(md.String())
	} else if err := os.WriteFile(*mdOut, []byte(md.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "cometbench chart:", err)
		return 1
	}
	if *svgOut != "" {
		var svg strings.Builder
		writeSVG(&svg, *title, reps)
		if err := os.WriteFile(*svgOut, []byte(svg.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "cometbench chart:", err)
			return 1
		}
	}
	return 0
}

// targetOrder puts cometbox first, then the peers, then the floor, then
// anything else.
func targetOrder(t string) int {
	switch t {
	case targetCometbox:
		return 0
	case targetNchan:
		return 1
	case targetPushpin:
		return 2
	case targetFloor:
		return 3
	}
	return 4
}

// sortReports orders idle workloads first, then by workload name, then by
// target.
func sortReports(reps []*report) {
	slices.SortStableFunc(reps, func(a, b *report) int {
		if ai, bi := a.Messages == 0, b.Messages == 0; ai != bi {
			if ai {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.Workload, b.Workload); c != 0 {
			return c
		}
		return targetOrder(a.Target) - targetOrder(b.Target)
	})
}

// workloads lists workload names in report order.
func workloads(reps []*report) []string {
	var out []string
	for _, r := range reps {
		if !slices.Contains(out, r.Workload) {
			out = append(out, r.Workload)
		}
	}
	return out
}

// peerOf finds the Nchan run of the same workload, the reference for ratios.
func peerOf(reps []*report, r *report) *report {
	for _, o := range reps {
		if o.Workload == r.Workload && o.Target == targetNchan {
			return o
		}
	}
	return nil
}

func writeMarkdown(w io.Writer, reps []*report) {
	var idle, fan []*report
	for _, r := range reps {
		if r.Messages == 0 {
			idle = append(idle, r)
		} else {
			fan = append(fan, r)
		}
	}
	if len(idle) > 0 {
		fmt.Fprintln(w, "| workload | server | connections held | server RSS idle | RSS per subscriber | vs Nchan |")
		fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|")
		for _, r := range idle {
			ratio := ""
			if p := peerOf(reps, r); p != nil && r.RSSPerSubKiB > 0 {
				ratio = fmt.Sprintf("%.2f×", r.RSSPerSubKiB/p.RSSPerSubKiB)
			}
			fmt.Fprintf(w, "| %s | %s | %d | %s | %.2f KiB | %s |\n",
				r.Workload, r.Target, r.ConnectionsHeld, kib(r.RSSIdleKiB), r.RSSPerSubKiB, ratio)
		}
		fmt.Fprintln(w)
	}
	if len(fan) > 0 {
		fmt.Fprintln(w, "| workload | server | subscribers | deliveries/s | vs Nchan | p50 / p90 / p99 / max latency (ms) | server CPU per delivery | server core per delivery (busy, softirq) | cores busy: server / client | RSS per subscriber | lost / dup |")
		fmt.Fprintln(w, "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
		for _, r := range fan {
			ratio := ""
			if p := peerOf(reps, r); p != nil && p.DeliveriesPS > 0 {
				ratio = fmt.Sprintf("%.2f×", r.DeliveriesPS/p.DeliveriesPS)
			}
			busy := busyColumn(r)
			core := "–"
			if c := r.ServerCore; c != nil {
				core = fmt.Sprintf("%.2f µs (%.0f %%, %.0f %%)", r.ServerCorePerDel, 100*c.Busy, 100*c.Softirq)
			}
			fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %.0f / %.0f / %.0f / %.0f | %.2f µs | %s | %s | %.2f KiB | %d / %d |\n",
				r.Workload, r.Target, r.ConnectionsHeld, thousands(r.DeliveriesPS), ratio,
				r.LatencyMs.P50, r.LatencyMs.P90, r.LatencyMs.P99, r.LatencyMs.Max,
				r.ServerCPUPerDel, core, busy, r.RSSPerSubKiB, r.Lost, r.Duplicated)
		}
	}
}

// busyColumn says who set the pace: how busy the server's and the
// client's cores were while publishing, read whole when the run knew them
// (-server-core, -client-core), else the processes' own CPU time.
func busyColumn(r *report) string {
	server, client := r.ServerBusy, r.ClientBusy
	if r.ServerCore != nil {
		server = r.ServerCore.Busy
	}
	if r.ClientCore != nil {
		client = r.ClientCore.Busy
	}
	if client == 0 {
		return fmt.Sprintf("%.0f %% / –", 100*server)
	}
	return fmt.Sprintf("%.0f %% / %.0f %%", 100*server, 100*client)
}

func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// panel is one bar group of the chart.
type panel struct {
	title string
	bars  []bar
	unit  string
}

type bar struct {
	label string
	value float64
}

// panelsFor picks what to draw: memory for idle workloads, throughput and
// p99 latency for the others.
func panelsFor(reps []*report) []panel {
	var out []panel
	for _, wl := range workloads(reps) {
		var mem, rate, p99 panel
		mem = panel{title: wl + ": memory per subscriber", unit: "KiB, lower is better"}
		rate = panel{title: wl + ": deliveries/s", unit: "higher is better"}
		p99 = panel{title: wl + ": p99 latency", unit: "ms, lower is better"}
		idle := false
		for _, r := range reps {
			if r.Workload != wl {
				continue
			}
			if r.Messages == 0 {
				idle = true
				mem.bars = append(mem.bars, bar{r.Target, r.RSSPerSubKiB})
				continue
			}
			rate.bars = append(rate.bars, bar{r.Target, r.DeliveriesPS})
			p99.bars = append(p99.bars, bar{r.Target, r.LatencyMs.P99})
		}
		if idle {
			out = append(out, mem)
		} else {
			out = append(out, rate, p99)
		}
	}
	return out
}

var targetColors = map[string]string{
	targetCometbox: "#2b6cb0",
	targetNchan:    "#38a169",
	targetPushpin:  "#dd6b20",
	targetFloor:    "#718096",
}

func writeSVG(w io.Writer, title string, reps []*report) {
	panels := panelsFor(reps)
	const (
		pw, ph   = 300, 230 // panel size
		cols     = 3
		top      = 50
		gap      = 20
		plotTop  = 48 // inside a panel: room for the title
		plotBot  = 40 // room for the labels
		barWidth = 56
	)
	rows := (len(panels) + cols - 1) / cols
	width := cols*pw + (cols+1)*gap
	height := top + rows*(ph+gap) + 30
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif">`+"\n", width, height, width, height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(w, `<text x="%d" y="30" font-size="18" font-weight="bold">%s</text>`+"\n", gap, html.EscapeString(title))
	if len(reps) > 0 {
		m := reps[0].Machine
		fmt.Fprintf(w, `<text x="%d" y="%d" font-size="11" fill="#555">%s</text>`+"\n", gap, height-10,
			html.EscapeString(fmt.Sprintf("%d subscribers per run · %d CPUs (%s) · server on one core, client on CPU %s · loopback · %s",
				reps[0].Subscribers, m.CPUs, m.Model, m.CPUPin, m.Go)))
	}
	for i, p := range panels {
		x0 := gap + (i%cols)*(pw+gap)
		y0 := top + (i/cols)*(ph+gap)
		fmt.Fprintf(w, `<g transform="translate(%d,%d)">`+"\n", x0, y0)
		fmt.Fprintf(w, `<rect width="%d" height="%d" fill="#f7fafc" stroke="#e2e8f0"/>`+"\n", pw, ph)
		fmt.Fprintf(w, `<text x="10" y="20" font-size="13" font-weight="bold">%s</text>`+"\n", html.EscapeString(p.title))
		fmt.Fprintf(w, `<text x="10" y="36" font-size="11" fill="#555">%s</text>`+"\n", html.EscapeString(p.unit))
		top := 0.0
		for _, b := range p.bars {
			top = max(top, b.value)
		}
		if top <= 0 || math.IsNaN(top) {
			top = 1
		}
		plotH := float64(ph - plotTop - plotBot)
		base := ph - plotBot
		fmt.Fprintf(w, `<line x1="10" x2="%d" y1="%d" y2="%d" stroke="#a0aec0"/>`+"\n", pw-10, base, base)
		slot := (pw - 20) / max(len(p.bars), 1)
		for j, b := range p.bars {
			h := b.value / (top * 1.12) * plotH
			bx := 10 + j*slot + (slot-barWidth)/2
			by := float64(base) - h
			color := targetColors[b.label]
			if color == "" {
				color = "#718096"
			}
			fmt.Fprintf(w, `<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"/>`+"\n", bx, by, barWidth, h, color)
			fmt.Fprintf(w, `<text x="%d" y="%.1f" font-size="11" text-anchor="middle">%s</text>`+"\n", bx+barWidth/2, by-4, html.EscapeString(shortNumber(b.value)))
			fmt.Fprintf(w, `<text x="%d" y="%d" font-size="12" text-anchor="middle">%s</text>`+"\n", bx+barWidth/2, base+16, html.EscapeString(b.label))
		}
		fmt.Fprintln(w, `</g>`)
	}
	fmt.Fprintln(w, `</svg>`)
}

// shortNumber prints a bar's value compactly: 118k, 10.2, 0.87.
func shortNumber(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.0fk", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
