// Command cometbench is a load generator for cometbox and its peers, Nchan
// and Pushpin. It holds many subscribers over SSE, NDJSON streaming,
// long-poll or WebSocket, publishes numbered, timestamped messages, and
// reports the server's memory and CPU, deliveries per second,
// publish-to-receive latency, and lost and duplicated messages.
//
//	cometbench [run] [flags]        run one workload against one server
//	cometbench origin [flags]       the GRIP origin Pushpin proxies to
//	cometbench floor [flags]        a bare send loop: the kernel's floor
//	cometbench chart [flags] FILES  render run reports as markdown and SVG
//
// See README.md beside this file.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 {
		switch args[0] {
		case "origin":
			os.Exit(runOrigin(args[1:]))
		case "floor":
			os.Exit(runFloor(args[1:]))
		case "chart":
			os.Exit(runChart(args[1:]))
		case "run":
			args = args[1:]
		}
	}
	cfg, err := parseFlags(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "cometbench:", err)
		os.Exit(2)
	}
	os.Exit(runBench(cfg))
}

// config is one run's settings, from the command line.
type config struct {
	args []string // as given, for -procs children

	Target    string
	Transport string
	Base      string
	PubURL    string
	SubURL    string
	Channel   string
	Workload  string

	Subscribers int
	Messages    int
	Size        int
	Plan        pubPlan

	Procs              int
	PIDs               []int
	ServerCore         int // -1: not read
	ClientCore         int // -1: not read
	Sources            string
	ConnectConcurrency int
	PollDelay          time.Duration
	LongPollWait       int

	ConnectTimeout time.Duration
	Settle         time.Duration
	ProbeTimeout   time.Duration
	Drain          time.Duration
	Timeout        time.Duration

	JSON       string
	Quiet      bool
	CPUProfile string

	Child bool   // internal: a -procs child
	Run   string // internal: the run token children share
}

func parseFlags(args []string, out io.Writer) (*config, error) {
	c := &config{args: args}
	fs := flag.NewFlagSet("cometbench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: cometbench [run] [flags]\n       cometbench origin [flags]\n       cometbench chart [flags] REPORT.json...\n\nrun flags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.Target, "target", targetCometbox, "server under test: cometbox, nchan, pushpin or floor")
	fs.StringVar(&c.Transport, "transport", transportSSE, "subscriber transport: sse, stream (NDJSON / raw lines), longpoll or ws")
	fs.StringVar(&c.Base, "base", "", "server base URL (default per target: cometbox http://127.0.0.1:18080, nchan :18081, pushpin proxy :17999)")
	fs.StringVar(&c.PubURL, "pub-url", "", "publish URL template, {channel} replaced (default per target)")
	fs.StringVar(&c.SubURL, "sub-url", "", "subscribe URL template, {channel} replaced (default per target)")
	fs.StringVar(&c.Channel, "channel", "bench", "channel every subscriber holds")
	fs.StringVar(&c.Workload, "workload", "", "name of the workload in reports and charts (default: transport-size)")
	fs.IntVar(&c.Subscribers, "subscribers", 1000, "subscribers to hold")
	fs.IntVar(&c.Subscribers, "n", 1000, "shorthand for -subscribers")
	fs.IntVar(&c.Messages, "messages", 100, "messages to publish (0: measure idle subscribers only)")
	fs.IntVar(&c.Messages, "m", 100, "shorthand for -messages")
	fs.IntVar(&c.Size, "size", 100, "payload size in bytes (at least the ~35-byte header)")
	fs.Float64Var(&c.Plan.Rate, "rate", 0, "messages per second; 0 publishes as fast as possible")
	fs.IntVar(&c.Plan.Concurrency, "pub-concurrency", 1, "publish requests in flight")
	fs.IntVar(&c.Plan.Window, "window", 0, "at most this many messages not yet delivered to every subscriber (0: no limit)")
	fs.DurationVar(&c.Plan.WindowTimeout, "window-timeout", 5*time.Second, "longest wait for a message to complete before the window moves on")
	fs.IntVar(&c.Procs, "procs", 1, "client processes to spread the subscribers over (each holds at most ~19,900 sockets)")
	pids := fs.String("pid", "", "server PIDs (comma list) whose process trees' RSS and CPU are measured")
	fs.IntVar(&c.ServerCore, "server-core", -1, "the CPU the server is pinned to: its whole use (softirq included) is read from /proc/stat while publishing")
	fs.IntVar(&c.ClientCore, "client-core", -1, "the CPU this client is pinned to, read the same way: a client core near 100 % busy sets the pace")
	fs.StringVar(&c.Sources, "src", "127.0.0.2-127.0.0.9", "local source addresses: a range in the last octet or a comma list")
	fs.IntVar(&c.ConnectConcurrency, "connect-concurrency", 64, "connection attempts in flight")
	fs.IntVar(&c.LongPollWait, "longpoll-wait", 30, "long-poll hold asked of cometbox, in seconds")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", 60*time.Second, "longest time to bring every subscriber up")
	fs.DurationVar(&c.Settle, "settle", 3*time.Second, "wait after connecting before the idle memory reading")
	fs.DurationVar(&c.ProbeTimeout, "probe-timeout", 30*time.Second, "longest time for every subscriber to receive a probe")
	fs.DurationVar(&c.Drain, "drain", 30*time.Second, "longest wait after the last publish for every delivery")
	fs.DurationVar(&c.Timeout, "timeout", 5*time.Minute, "bound on the whole run")
	fs.StringVar(&c.JSON, "json", "", "write the report as JSON to this file")
	fs.BoolVar(&c.Quiet, "q", false, "no progress lines on stderr")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write the client's CPU profile here (is the client the bottleneck?)")
	fs.DurationVar(&c.PollDelay, "poll-delay", 500*time.Microsecond, "epoll readers: pause after a wait that found few sockets ready (batches wake-ups; adds at most this to latency)")
	readers := fs.String("readers", "epoll", "how held SSE, NDJSON and WebSocket streams are read: epoll (one poller) or goroutine (one per connection)")
	fs.BoolVar(&c.Child, "child", false, "internal: run as a -procs child")
	fs.StringVar(&c.Run, "run", "", "internal: run token")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, p := range strings.Split(*pids, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("-pid: %q is not a process id", p)
		}
		c.PIDs = append(c.PIDs, pid)
	}
	switch {
	case c.Subscribers < 0, c.Messages < 0, c.Size < 0, c.Plan.Rate < 0, c.Plan.Window < 0:
		return nil, errors.New("counts, sizes and rates cannot be negative")
	case c.Procs < 1:
		return nil, errors.New("-procs must be at least 1")
	case c.Plan.Concurrency < 1:
		return nil, errors.New("-pub-concurrency must be at least 1")
	}
	if c.Workload == "" {
		c.Workload = fmt.Sprintf("%s-%dB", c.Transport, c.Size)
	}
	c.Plan.Messages = c.Messages
	switch *readers {
	case "epoll":
	case "goroutine":
		goroutineReaders = true
	default:
		return nil, fmt.Errorf("-readers: %q is neither epoll nor goroutine", *readers)
	}
	if _, err := parseSources(c.Sources); err != nil {
		return nil, err
	}
	return c, nil
}
