package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// A fleet is the subscribers of a run: held in this process (localFleet) or
// spread over child processes (procFleet, procs.go) when one process cannot
// hold enough sockets. The run drives both the same way: connect, wait for
// every subscriber to see a probe, publish while watching completions, then
// finish.
type fleet interface {
	// connect opens every subscriber and returns once all are up or the
	// timeout passed.
	connect(ctx context.Context, timeout time.Duration) (connectResult, error)
	// probed is closed once every subscriber has received a probe message.
	probed() <-chan struct{}
	// freeze ends the probe phase: the subscribers that saw a probe are
	// the ones expected to receive every message.
	freeze()
	// completions delivers each seq once every subscriber has it.
	completions() <-chan uint64
	// finish waits up to drain for every subscriber to have every
	// message, then closes them and returns what they saw.
	finish(ctx context.Context, drain time.Duration) (groupResult, error)
}

// connectResult is how connecting went.
type connectResult struct {
	Up      int     `json:"up"`      // subscribers that came up
	Pending int     `json:"pending"` // subscribers still not up at the timeout
	Seconds float64 `json:"seconds"` // time to bring them up
}

// groupResult is what a group of subscribers saw: the unit children send to
// their parent and the parent merges.
type groupResult struct {
	Subscribers int          `json:"subscribers"`
	Expected    int          `json:"expected"` // live when the run froze
	LiveAtEnd   int          `json:"live_at_end"`
	Unique      int64        `json:"unique"`
	Dups        int64        `json:"dups"`
	Lost        int64        `json:"lost"`
	Foreign     int64        `json:"foreign"`
	Resets      int64        `json:"resets"`
	Reconnects  int64        `json:"reconnects"`
	Latency     histSnapshot `json:"latency"`
	LastRecv    []int64      `json:"last_recv"`  // by seq: unix nanos
	FirstRecv   []int64      `json:"first_recv"` // by seq: unix nanos
	ClientCPU   float64      `json:"client_cpu_s"`
	Errors      []string     `json:"errors,omitempty"`
}

// merge adds o into g.
func (g *groupResult) merge(o groupResult) {
	g.Subscribers += o.Subscribers
	g.Expected += o.Expected
	g.LiveAtEnd += o.LiveAtEnd
	g.Unique += o.Unique
	g.Dups += o.Dups
	g.Lost += o.Lost
	g.Foreign += o.Foreign
	g.Resets += o.Resets
	g.Reconnects += o.Reconnects
	g.Latency.merge(o.Latency)
	if len(g.LastRecv) < len(o.LastRecv) {
		g.LastRecv = append(g.LastRecv, make([]int64, len(o.LastRecv)-len(g.LastRecv))...)
	}
	for i, v := range o.LastRecv {
		g.LastRecv[i] = max(g.LastRecv[i], v)
	}
	if len(g.FirstRecv) < len(o.FirstRecv) {
		g.FirstRecv = append(g.FirstRecv, make([]int64, len(o.FirstRecv)-len(g.FirstRecv))...)
	}
	for i, v := range o.FirstRecv {
		if v != 0 && (g.FirstRecv[i] == 0 || v < g.FirstRecv[i]) {
			g.FirstRecv[i] = v
		}
	}
	g.ClientCPU += o.ClientCPU
	g.Errors = append(g.Errors, o.Errors...)
}

// localFleet holds its subscribers as goroutines of this process.
type localFleet struct {
	env    *subEnv
	subs   []*subscriber
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newLocalFleet(env *subEnv, n int) *localFleet {
	f := &localFleet{env: env, subs: make([]*subscriber, n)}
	for i := range f.subs {
		f.subs[i] = newSubscriber(env)
	}
	return f
}

func (f *localFleet) connect(ctx context.Context, timeout time.Duration) (connectResult, error) {
	start := time.Now()
	// The subscribers outlive connect: they end in finish, or with ctx.
	f.ctx, f.cancel = context.WithCancel(ctx)
	for _, s := range f.subs {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			s.run(f.ctx)
		}()
	}
	select {
	case <-f.env.allUp:
	case <-time.After(timeout):
	case <-ctx.Done():
	}
	close(f.env.giveUp)
	res := connectResult{
		Pending: int(f.env.pending.Load()),
		Seconds: time.Since(start).Seconds(),
	}
	res.Up = len(f.subs) - res.Pending
	if res.Pending > 0 {
		return res, fmt.Errorf("%d of %d subscribers not up after %s: %v", res.Pending, len(f.subs), timeout, f.env.errs.list())
	}
	return res, nil
}

func (f *localFleet) probed() <-chan struct{} { return f.env.tracker.allProbe }

func (f *localFleet) freeze() { f.env.tracker.freeze() }

func (f *localFleet) completions() <-chan uint64 { return f.env.tracker.complete }

func (f *localFleet) finish(ctx context.Context, drain time.Duration) (groupResult, error) {
	select {
	case <-f.env.tracker.allDone:
	case <-time.After(drain):
	case <-ctx.Done():
	}
	live := int(f.env.live.Load())
	if f.cancel != nil {
		f.cancel()
	}
	// Subscribers end as soon as their sockets close; bound the wait all
	// the same, since the ledgers are only read for the totals below.
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	if f.env.poller != nil {
		f.env.poller.close()
	}
	t := f.env.tracker
	return groupResult{
		Subscribers: len(f.subs),
		Expected:    int(t.expected.Load()),
		LiveAtEnd:   live,
		Unique:      t.unique.Load(),
		Dups:        t.dups.Load(),
		Lost:        t.lost(),
		Foreign:     t.foreign.Load(),
		Resets:      t.resets.Load(),
		Reconnects:  f.env.reconnect.Load(),
		Latency:     t.hist.snapshot(),
		LastRecv:    t.lastReceived(),
		FirstRecv:   t.firstReceived(),
		ClientCPU:   selfCPU().Seconds(),
		Errors:      f.env.errs.list(),
	}, nil
}
