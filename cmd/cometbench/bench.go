package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"time"
)

// runBench runs one workload: connect every subscriber, let them settle and
// read the server's idle memory, prove every subscription live with probes,
// publish, wait for the deliveries, read the server again, report.
// It returns the exit code: 0, 1 when the run could not be made, 3 when a
// message was lost or duplicated (which must never happen).
func runBench(cfg *config) int {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	// The client's own garbage collector should cost it as little as
	// possible: it shares a core with nothing but itself and memory is
	// plentiful next to a server's.
	debug.SetGCPercent(400)
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}

	logf := func(format string, a ...any) {
		if !cfg.Quiet {
			fmt.Fprintf(os.Stderr, "cometbench: "+format+"\n", a...)
		}
	}
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "cometbench:", err)
		return 1
	}

	tgt, err := newTarget(cfg.Target, cfg.Transport, cfg.Base, cfg.PubURL, cfg.SubURL)
	if err != nil {
		return fail(err)
	}
	run := cfg.Run
	if run == "" {
		run = newRunToken()
	}
	codec := newPayloadCodec(run)

	var fl fleet
	var local *localFleet
	if cfg.Procs == 1 {
		sources, _ := parseSources(cfg.Sources)
		d := &dialer{sources: sources, timeout: 10 * time.Second}
		tr := newTracker(codec, cfg.Messages, cfg.Subscribers)
		env, err := newSubEnv(tgt, cfg.Channel, d, tr, cfg.Subscribers, cfg.Size, cfg.ConnectConcurrency, cfg.PollDelay)
		if err != nil {
			return fail(err)
		}
		env.lpWait = cfg.LongPollWait
		local = newLocalFleet(env, cfg.Subscribers)
		fl = local
	}
	if cfg.Child {
		return runChild(ctx, local, cfg.ConnectTimeout)
	}

	rep := &report{
		Workload: cfg.Workload, Target: cfg.Target, Transport: cfg.Transport,
		Subscribers: cfg.Subscribers, Messages: cfg.Messages, Size: cfg.Size,
		Rate: cfg.Plan.Rate, Concurrency: cfg.Plan.Concurrency, Window: cfg.Plan.Window,
		Procs: cfg.Procs, Machine: describeMachine(), Started: nowStamp(),
	}
	if sources, _ := parseSources(cfg.Sources); len(sources) > 0 {
		rep.Sources = len(sources)
	}
	sample := func(what string) procSample {
		s, err := sampleTree(cfg.PIDs)
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("server %s: %v", what, err))
		}
		return s
	}

	before := sample("before")
	if cfg.Procs > 1 {
		pf, err := newProcFleet(cfg.args, cfg.Subscribers, cfg.Procs, cfg.Messages, run)
		if err != nil {
			return fail(err)
		}
		fl = pf
	}
	logf("%s: connecting %d %s subscribers to %s", cfg.Workload, cfg.Subscribers, cfg.Transport, tgt.subURL)
	conn, err := fl.connect(ctx, cfg.ConnectTimeout)
	rep.ConnectionsHeld, rep.ConnectSeconds = conn.Up, conn.Seconds
	if err != nil {
		rep.Errors = append(rep.Errors, "connect: "+err.Error())
	}
	logf("%d up in %.1fs; settling %s", conn.Up, conn.Seconds, cfg.Settle)
	sleepCtx(ctx, cfg.Settle)
	idle := sample("idle")

	pub := newPublisher(tgt, codec, cfg.Channel, cfg.Size, cfg.Plan.Concurrency)
	if err := probeAll(ctx, pub, fl, cfg.ProbeTimeout); err != nil {
		rep.Errors = append(rep.Errors, err.Error())
	}
	fl.freeze()
	// Let the last probes' deliveries finish before the CPU reading.
	sleepCtx(ctx, 500*time.Millisecond)

	start := sample("start")
	clientStart := selfCPU()
	coreStart, coreErr := readCoreTimes(cfg.ServerCore)
	clientCoreStart, clientCoreErr := readCoreTimes(cfg.ClientCore)
	var pr pubResult
	if cfg.Messages > 0 {
		logf("publishing %d × %d B (rate %g/s, concurrency %d, window %d)", cfg.Messages, cfg.Size, cfg.Plan.Rate, cfg.Plan.Concurrency, cfg.Plan.Window)
		pr = pub.run(ctx, cfg.Plan, fl.completions())
		rep.Errors = append(rep.Errors, pub.errs.list()...)
	}
	g, err := fl.finish(ctx, cfg.Drain)
	if err != nil {
		rep.Errors = append(rep.Errors, err.Error())
	}
	end := sample("after")
	coreEnd, coreEndErr := readCoreTimes(cfg.ServerCore)
	clientCoreEnd, clientCoreEndErr := readCoreTimes(cfg.ClientCore)

	rep.fill(g, pr)
	rep.fillServer(before, idle, start, end)
	if cfg.Messages > 0 && rep.Seconds > 0 {
		rep.PhaseSeconds = end.At.Sub(start.At).Seconds()
		rep.ServerBusy = rep.ServerCPUSeconds / rep.PhaseSeconds
		if cfg.Procs == 1 {
			rep.ClientBusy = (selfCPU() - clientStart).Seconds() / rep.PhaseSeconds
		}
		if cfg.ServerCore >= 0 && coreErr == nil && coreEndErr == nil {
			rep.fillCore(cfg.ServerCore, coreStart.use(coreEnd, clockTicks))
		}
		if cfg.ClientCore >= 0 && clientCoreErr == nil && clientCoreEndErr == nil {
			use := clientCoreStart.use(clientCoreEnd, clockTicks)
			rep.ClientCore, rep.ClientCoreNumber = &use, cfg.ClientCore
		}
	}
	rep.printTable(os.Stdout)
	if local != nil && local.env.poller != nil {
		if w := local.env.poller.waits.Load(); w > 0 {
			logf("poller: %d waits, %.1f ready sockets per wait", w, float64(local.env.poller.events.Load())/float64(w))
		}
	}
	if cfg.JSON != "" {
		if err := rep.writeJSON(cfg.JSON); err != nil {
			return fail(err)
		}
	}
	if rep.Lost > 0 || rep.Duplicated > 0 {
		return 3
	}
	if conn.Pending > 0 {
		return 1
	}
	return 0
}

// probeAll publishes probes until every subscriber has received one: only
// then is every subscription known to be held by the server, so that a
// message missing later is a loss and not a late subscription.
func probeAll(ctx context.Context, pub *publisher, fl fleet, timeout time.Duration) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := pub.probe(ctx); err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		select {
		case <-fl.probed():
			return nil
		case <-deadline:
			return fmt.Errorf("probe: not every subscriber received a probe within %s", timeout)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}
