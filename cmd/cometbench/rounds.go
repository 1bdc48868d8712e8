package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// A sitting may run every workload on every server several times, in
// turns (compare.sh ROUNDS): this VM's speed drifts by 10-30 % over
// minutes, so one run of each can put a slow minute on one side. The
// table then shows each server's median run, and the ratios of the runs
// taken side by side, round by round.

// runKey names the runs of one workload on one server.
type runKey struct{ workload, target string }

// pickMedians keeps one report per workload and server: its median run,
// by deliveries per second for a fan-out and by memory per subscriber
// when idle. rounds holds every run of each kept report's workload and
// server, oldest first.
func pickMedians(reps []*report) (kept []*report, rounds map[runKey][]*report) {
	rounds = make(map[runKey][]*report)
	var order []runKey
	for _, r := range reps {
		k := runKey{r.Workload, r.Target}
		if _, seen := rounds[k]; !seen {
			order = append(order, k)
		}
		rounds[k] = append(rounds[k], r)
	}
	for _, k := range order {
		runs := rounds[k]
		slices.SortStableFunc(runs, func(a, b *report) int { return strings.Compare(a.Started, b.Started) })
		byFigure := slices.Clone(runs)
		slices.SortStableFunc(byFigure, func(a, b *report) int { return cmp.Compare(medianFigure(a), medianFigure(b)) })
		kept = append(kept, byFigure[(len(byFigure)-1)/2])
	}
	return kept, rounds
}

func medianFigure(r *report) float64 {
	if r.Messages == 0 {
		return r.RSSPerSubKiB
	}
	return r.DeliveriesPS
}

// writeRounds lists, for each fan-out workload run more than once, the
// ratios of cometbox, and of the floor, to Nchan in each round: deliveries
// per second and p99 latency. The floor's ratios are the best any server
// could show against Nchan in that round.
func writeRounds(w io.Writer, kept []*report, rounds map[runKey][]*report) {
	var lines []string
	for _, wl := range workloads(kept) {
		for _, ours := range []string{targetCometbox, targetFloor} {
			if line, ok := roundRatios(wl, ours, rounds[runKey{wl, ours}], rounds[runKey{wl, targetNchan}]); ok {
				lines = append(lines, line)
			}
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each row is its server's median run of several, taken in turns.")
	fmt.Fprintln(w)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

// roundRatios is the line of one server's ratios to Nchan, round by round,
// if both ran the fan-out workload wl at least twice.
func roundRatios(wl, name string, ours, peer []*report) (string, bool) {
	n := min(len(ours), len(peer))
	if n < 2 || ours[0].Messages == 0 {
		return "", false
	}
	var rates, p99s []string
	for i := range n {
		if peer[i].DeliveriesPS > 0 && peer[i].LatencyMs.P99 > 0 {
			rates = append(rates, fmt.Sprintf("%.2f×", ours[i].DeliveriesPS/peer[i].DeliveriesPS))
			p99s = append(p99s, fmt.Sprintf("%.2f", ours[i].LatencyMs.P99/peer[i].LatencyMs.P99))
		}
	}
	return fmt.Sprintf("- %s, %s against Nchan round by round: deliveries/s %s; p99 latency %s",
		wl, name, strings.Join(rates, ", "), strings.Join(p99s, ", ")), true
}
