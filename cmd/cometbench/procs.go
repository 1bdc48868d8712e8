package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// With -procs K, cometbench runs itself as K child processes, each holding
// its share of the subscribers: a process can hold about 19,900 sockets
// here (the hard file limit). The parent publishes and measures the server;
// the children talk to it in JSON lines:
//
//	child → parent (stdout): {"ev":"connected",...} once up,
//	                         {"ev":"probed"} once every subscriber saw a probe,
//	                         {"ev":"complete","seq":N} as messages complete,
//	                         {"ev":"result",...} at the end.
//	parent → child (stdin):  "freeze\n" after the probe phase,
//	                         "finish <drain-nanos>\n", then closes stdin.
//
// Children write logs to stderr, which is the parent's.

type childEvent struct {
	Ev      string         `json:"ev"`
	Connect *connectResult `json:"connect,omitempty"`
	Error   string         `json:"error,omitempty"`
	Seq     uint64         `json:"seq,omitempty"`
	Result  *groupResult   `json:"result,omitempty"`
}

// procFleet drives K child processes.
type procFleet struct {
	children []*child
	messages int

	probedCh   chan struct{}
	completeCh chan uint64
	events     chan childMsg
	flushed    chan struct{}
	probedN    int
	doneBySeq  map[uint64]int
	results    []*groupResult
	connected  []*childEvent
	readersWG  sync.WaitGroup
	dispatchMu sync.Mutex
}

type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

type childMsg struct {
	idx int
	ev  *childEvent
	err error // the child's stdout ended (ev is nil)
}

// newProcFleet starts k children, each with its share of n subscribers.
// args are this run's own command line; the overrides come after them, and
// the flag package keeps the last value given.
func newProcFleet(args []string, n, k, messages int, run string) (*procFleet, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("procs: find own executable: %w", err)
	}
	f := &procFleet{
		messages:   messages,
		probedCh:   make(chan struct{}),
		completeCh: make(chan uint64, messages+1),
		events:     make(chan childMsg, 64),
		flushed:    make(chan struct{}),
		doneBySeq:  make(map[uint64]int),
		results:    make([]*groupResult, k),
		connected:  make([]*childEvent, k),
	}
	for i := range k {
		share := n / k
		if i < n%k {
			share++
		}
		childArgs := append(append([]string(nil), args...),
			"-child", "-procs=1", "-json=", "-pid=", "-run="+run,
			"-subscribers="+strconv.Itoa(share))
		cmd := exec.Command(self, childArgs...)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, fmt.Errorf("procs: child %d: %w", i, err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, fmt.Errorf("procs: child %d: %w", i, err)
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("procs: start child %d: %w", i, err)
		}
		f.children = append(f.children, &child{cmd: cmd, stdin: stdin})
		f.readersWG.Add(1)
		go f.read(i, stdout)
	}
	go f.dispatch()
	return f, nil
}

// read forwards one child's events.
func (f *procFleet) read(idx int, stdout io.Reader) {
	defer f.readersWG.Done()
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 256<<20) // a result line holds every seq's time
	for sc.Scan() {
		var ev childEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			fmt.Fprintf(os.Stderr, "cometbench: child %d: odd line %q\n", idx, sc.Text())
			continue
		}
		f.events <- childMsg{idx: idx, ev: &ev}
	}
	err := sc.Err()
	if err == nil {
		err = io.EOF
	}
	f.events <- childMsg{idx: idx, err: err}
}

// dispatch turns the children's probed and complete events into the
// fleet's; connected and result events are collected for connect and
// finish.
func (f *procFleet) dispatch() {
	for m := range f.events {
		if m.idx < 0 {
			close(f.flushed)
			continue
		}
		f.dispatchMu.Lock()
		switch {
		case m.ev == nil:
			if f.results[m.idx] == nil {
				f.results[m.idx] = &groupResult{Errors: []string{fmt.Sprintf("child %d ended without a result: %v", m.idx, m.err)}}
			}
		case m.ev.Ev == "connected":
			f.connected[m.idx] = m.ev
		case m.ev.Ev == "probed":
			f.probedN++
			if f.probedN == len(f.children) {
				close(f.probedCh)
			}
		case m.ev.Ev == "complete":
			f.doneBySeq[m.ev.Seq]++
			if f.doneBySeq[m.ev.Seq] == len(f.children) {
				delete(f.doneBySeq, m.ev.Seq)
				f.completeCh <- m.ev.Seq
			}
		case m.ev.Ev == "result" && m.ev.Result != nil:
			f.results[m.idx] = m.ev.Result
		}
		f.dispatchMu.Unlock()
	}
}

func (f *procFleet) connect(ctx context.Context, timeout time.Duration) (connectResult, error) {
	deadline := time.Now().Add(timeout + 5*time.Second) // children time out on their own first
	for {
		f.dispatchMu.Lock()
		var res connectResult
		var errs []string
		n := 0
		for i, ev := range f.connected {
			switch {
			case ev != nil:
				n++
				res.Up += ev.Connect.Up
				res.Pending += ev.Connect.Pending
				res.Seconds = max(res.Seconds, ev.Connect.Seconds)
				if ev.Error != "" {
					errs = append(errs, ev.Error)
				}
			case f.results[i] != nil: // ended before connecting
				n++
				errs = append(errs, f.results[i].Errors...)
			}
		}
		f.dispatchMu.Unlock()
		if n == len(f.children) {
			if len(errs) > 0 {
				return res, errors.New(strings.Join(errs, "; "))
			}
			return res, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return res, fmt.Errorf("procs: %d of %d children did not report connecting", len(f.children)-n, len(f.children))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *procFleet) probed() <-chan struct{} { return f.probedCh }

func (f *procFleet) freeze() {
	for _, c := range f.children {
		fmt.Fprintf(c.stdin, "freeze\n")
	}
}

func (f *procFleet) completions() <-chan uint64 { return f.completeCh }

func (f *procFleet) finish(ctx context.Context, drain time.Duration) (groupResult, error) {
	for _, c := range f.children {
		fmt.Fprintf(c.stdin, "finish %d\n", drain.Nanoseconds())
		c.stdin.Close()
	}
	waited := make(chan struct{})
	go func() {
		// Wait closes the stdout pipes: read them to the end first.
		f.readersWG.Wait()
		for _, c := range f.children {
			_ = c.cmd.Wait()
		}
		close(waited)
	}()
	select {
	case <-waited:
	case <-time.After(drain + 30*time.Second):
		for _, c := range f.children {
			_ = c.cmd.Process.Kill() // our own child, by its PID
		}
		<-waited
	}
	// Every line is in the events channel now; a marker behind them tells
	// when dispatch has taken them all in.
	f.events <- childMsg{idx: -1}
	<-f.flushed
	f.dispatchMu.Lock()
	defer f.dispatchMu.Unlock()
	var total groupResult
	var errs []string
	for i, r := range f.results {
		if r == nil {
			errs = append(errs, fmt.Sprintf("child %d: no result", i))
			continue
		}
		total.merge(*r)
	}
	if len(errs) > 0 {
		return total, errors.New(strings.Join(errs, "; "))
	}
	return total, nil
}

// runChild is a child's side: hold this share of subscribers, report to
// the parent on stdout, finish when told on stdin.
func runChild(ctx context.Context, fl *localFleet, connectTimeout time.Duration) int {
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	send := func(ev childEvent) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(ev)
	}
	res, err := fl.connect(ctx, connectTimeout)
	ev := childEvent{Ev: "connected", Connect: &res}
	if err != nil {
		ev.Error = err.Error()
	}
	send(ev)

	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-fl.probed():
			send(childEvent{Ev: "probed"})
		case <-stop:
		}
	}()
	go func() {
		for {
			select {
			case seq := <-fl.completions():
				send(childEvent{Ev: "complete", Seq: seq})
			case <-stop:
				return
			}
		}
	}()

	// Wait for "freeze" and "finish <drain>"; a parent that goes away
	// ends the child too.
	drain := time.Duration(0)
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			break
		}
		cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
		if cmd == "freeze" {
			fl.freeze()
			continue
		}
		if cmd == "finish" {
			if ns, err := strconv.ParseInt(arg, 10, 64); err == nil {
				drain = time.Duration(ns)
			}
			break
		}
	}
	result, _ := fl.finish(ctx, drain)
	send(childEvent{Ev: "result", Result: &result})
	return 0
}
