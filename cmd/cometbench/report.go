package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// report is one run's outcome: what the table shows and the JSON holds.
type report struct {
	Workload    string  `json:"workload"` // a name for the chart, like "fanout-100B"
	Target      string  `json:"target"`
	Transport   string  `json:"transport"`
	Subscribers int     `json:"subscribers"`
	Messages    int     `json:"messages"`
	Size        int     `json:"size"`
	Rate        float64 `json:"rate"`
	Concurrency int     `json:"concurrency"`
	Window      int     `json:"window"`
	Procs       int     `json:"procs"`
	Sources     int     `json:"sources"`

	ConnectionsHeld int     `json:"connections_held"`    // up after connecting
	Counted         int     `json:"counted_subscribers"` // proved live by a probe; losses are counted over these
	LiveAtEnd       int     `json:"live_at_end"`
	ConnectSeconds  float64 `json:"connect_seconds"`

	// Server memory, VmRSS summed over the server's process tree, in KiB:
	// before any subscriber, with every subscriber idle, after the run.
	RSSBeforeKiB    int64   `json:"rss_before_kib"`
	RSSIdleKiB      int64   `json:"rss_idle_kib"`
	RSSAfterKiB     int64   `json:"rss_after_kib"`
	RSSPerSubKiB    float64 `json:"rss_per_subscriber_kib"`
	ServerProcesses int     `json:"server_processes"`

	Published     int     `json:"published"`
	PublishErrors int64   `json:"publish_errors"`
	WindowStalls  int     `json:"window_stalls"`
	Deliveries    int64   `json:"deliveries"`
	Seconds       float64 `json:"seconds"` // first publish to last delivery
	DeliveriesPS  float64 `json:"deliveries_per_second"`

	LatencyMs struct {
		P50  float64 `json:"p50"`
		P90  float64 `json:"p90"`
		P99  float64 `json:"p99"`
		Max  float64 `json:"max"`
		Mean float64 `json:"mean"`
	} `json:"latency_ms"`
	// Time to last subscriber: per message, publish to its last delivery.
	// ByMessage lists it in publish order, 0 for a message not published
	// or not delivered: on loopback the first 16 or so messages of a run
	// are slower than the rest, for every server, as the clients' TCP
	// acknowledges each segment at once after an idle spell.
	LastSubMs struct {
		P50       float64   `json:"p50"`
		Max       float64   `json:"max"`
		ByMessage []float64 `json:"by_message,omitempty"`
	} `json:"time_to_last_subscriber_ms"`
	// FirstSubMs is, per message, publish to its first delivery: how soon
	// the server starts a fan-out. GapMs is, per message after the first,
	// its previous one's last delivery to its publish: how long the
	// publisher took to notice and send, with one message in flight.
	FirstSubMs float64 `json:"time_to_first_subscriber_ms_p50"`
	GapMs      float64 `json:"publish_gap_ms_p50"`

	Lost       int64 `json:"lost"`
	Duplicated int64 `json:"duplicated"`
	Foreign    int64 `json:"foreign"`
	Resets     int64 `json:"resets"`
	Reconnects int64 `json:"reconnects"`

	ServerCPUSeconds float64 `json:"server_cpu_seconds"` // during publish and drain
	ServerCPUPerDel  float64 `json:"server_cpu_us_per_delivery"`
	ClientCPUSeconds float64 `json:"client_cpu_seconds"` // whole run, all client processes
	// Busy fractions of one core while publishing and draining: a client
	// near 1 measures itself, a server well under 1 was held back by
	// something else (the client, the publisher, other load).
	PhaseSeconds float64 `json:"phase_seconds"`
	ServerBusy   float64 `json:"server_busy"`
	ClientBusy   float64 `json:"client_busy,omitempty"`
	// ServerCore is the whole use of the server's core over the same
	// phase, softirq included (-server-core), and per delivery.
	ServerCore       *coreUse `json:"server_core,omitempty"`
	ServerCoreNumber int      `json:"server_core_number,omitempty"`
	ServerCorePerDel float64  `json:"server_core_us_per_delivery,omitempty"`
	// ClientCore is the same for the client's core (-client-core):
	// whatever ran there, the softirq work of its reads included.
	ClientCore       *coreUse `json:"client_core,omitempty"`
	ClientCoreNumber int      `json:"client_core_number,omitempty"`

	Errors  []string `json:"errors,omitempty"`
	Machine machine  `json:"machine"`
	Started string   `json:"started"`
}

// machine says where a run happened.
type machine struct {
	CPUs    int    `json:"cpus"`
	Model   string `json:"cpu_model,omitempty"`
	Kernel  string `json:"kernel,omitempty"`
	Go      string `json:"go"`
	MemKiB  int64  `json:"mem_kib,omitempty"`
	CPUPin  string `json:"client_cpus,omitempty"` // this process's affinity
	Network string `json:"network"`
	// LoadAvg is /proc/loadavg's 1, 5 and 15 minute figures when the run
	// started: anything else busy on the machine shows here.
	LoadAvg string `json:"loadavg"`
}

func describeMachine() machine {
	// runtime.NumCPU counts only the CPUs this process may use (taskset);
	// the machine's are in /proc/cpuinfo.
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Network: "loopback"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUs = 0
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			switch k = strings.TrimSpace(k); {
			case ok && k == "processor":
				m.CPUs++
			case ok && k == "model name" && m.Model == "":
				m.Model = strings.TrimSpace(v)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		fmt.Sscanf(string(b), "MemTotal: %d kB", &m.MemKiB)
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				m.CPUPin = strings.TrimSpace(v)
			}
		}
	}
	return m
}

// fill derives the delivery figures from what the subscribers and the
// publisher saw.
func (r *report) fill(g groupResult, pub pubResult) {
	r.LiveAtEnd = g.LiveAtEnd
	r.Counted = g.Expected
	r.Deliveries = g.Unique
	r.Lost = g.Lost
	r.Duplicated = g.Dups
	r.Foreign = g.Foreign
	r.Resets = g.Resets
	r.Reconnects = g.Reconnects
	r.ClientCPUSeconds = g.ClientCPU
	r.Errors = append(r.Errors, g.Errors...)
	r.Published = pub.Published
	r.PublishErrors = pub.Errors
	r.WindowStalls = pub.Stalls

	ms := func(us uint64) float64 { return float64(us) / 1000 }
	r.LatencyMs.P50 = ms(g.Latency.percentile(0.50))
	r.LatencyMs.P90 = ms(g.Latency.percentile(0.90))
	r.LatencyMs.P99 = ms(g.Latency.percentile(0.99))
	r.LatencyMs.Max = ms(g.Latency.MaxUS)
	r.LatencyMs.Mean = g.Latency.meanUS() / 1000

	// Per message: publish stamp to last delivery.
	var first, last int64
	var toLast []float64
	for seq := 1; seq < len(pub.Stamps) && seq < len(g.LastRecv); seq++ {
		ts, lr := pub.Stamps[seq], g.LastRecv[seq]
		if ts == 0 || lr == 0 {
			r.LastSubMs.ByMessage = append(r.LastSubMs.ByMessage, 0)
			continue
		}
		if first == 0 || ts < first {
			first = ts
		}
		last = max(last, lr)
		toLast = append(toLast, float64(lr-ts)/1e6)
		r.LastSubMs.ByMessage = append(r.LastSubMs.ByMessage, math.Round(float64(lr-ts)/1e5)/10)
	}
	if len(toLast) > 0 {
		slices.Sort(toLast)
		r.LastSubMs.P50 = toLast[(len(toLast)-1)/2]
		r.LastSubMs.Max = toLast[len(toLast)-1]
	}
	var toFirst, gaps []float64
	for seq := 1; seq < len(pub.Stamps) && seq < len(g.FirstRecv); seq++ {
		if ts, fr := pub.Stamps[seq], g.FirstRecv[seq]; ts != 0 && fr != 0 {
			toFirst = append(toFirst, float64(fr-ts)/1e6)
		}
		if seq > 1 && pub.Stamps[seq] != 0 && g.LastRecv[seq-1] != 0 {
			gaps = append(gaps, float64(pub.Stamps[seq]-g.LastRecv[seq-1])/1e6)
		}
	}
	r.FirstSubMs, r.GapMs = median(toFirst), median(gaps)
	if last > first {
		r.Seconds = float64(last-first) / 1e9
		r.DeliveriesPS = float64(r.Deliveries) / r.Seconds
	}
}

// fillServer derives the server figures from /proc samples.
func (r *report) fillServer(before, idle, start, end procSample) {
	r.RSSBeforeKiB = before.RSSKiB
	r.RSSIdleKiB = idle.RSSKiB
	r.RSSAfterKiB = end.RSSKiB
	r.ServerProcesses = idle.Procs
	if r.ConnectionsHeld > 0 && before.Procs > 0 && idle.Procs > 0 {
		r.RSSPerSubKiB = float64(idle.RSSKiB-before.RSSKiB) / float64(r.ConnectionsHeld)
	}
	if start.Procs > 0 && end.Procs > 0 {
		// A process of the tree that exited takes its ticks with it.
		cpu := max(end.CPU()-start.CPU(), 0)
		r.ServerCPUSeconds = cpu.Seconds()
		if r.Deliveries > 0 {
			r.ServerCPUPerDel = float64(cpu.Microseconds()) / float64(r.Deliveries)
		}
	}
}

// fillCore records the server core's use over the publish phase.
func (r *report) fillCore(n int, use coreUse) {
	r.ServerCore = &use
	r.ServerCoreNumber = n
	if r.Deliveries > 0 {
		r.ServerCorePerDel = use.BusySeconds * 1e6 / float64(r.Deliveries)
	}
}

// printTable writes the report for a person.
func (r *report) printTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	row("run", "%s: %s over %s, %d subscribers, %d × %d B", r.Workload, r.Target, r.Transport, r.Subscribers, r.Messages, r.Size)
	row("connections held", "%d (connected in %.1fs; %d proved live by a probe, %d live at end, %d reconnects)", r.ConnectionsHeld, r.ConnectSeconds, r.Counted, r.LiveAtEnd, r.Reconnects)
	if r.ServerProcesses > 0 {
		row("server RSS", "%s before, %s idle, %s after (%d processes)", kib(r.RSSBeforeKiB), kib(r.RSSIdleKiB), kib(r.RSSAfterKiB), r.ServerProcesses)
		row("RSS per subscriber", "%.2f KiB", r.RSSPerSubKiB)
	}
	if r.Messages > 0 {
		row("published", "%d (%d errors, %d window stalls)", r.Published, r.PublishErrors, r.WindowStalls)
		row("deliveries", "%d in %.2fs: %.0f/s", r.Deliveries, r.Seconds, r.DeliveriesPS)
		row("latency", "p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms", r.LatencyMs.P50, r.LatencyMs.P90, r.LatencyMs.P99, r.LatencyMs.Max)
		row("time to last subscriber", "p50 %.1f ms, max %.1f ms", r.LastSubMs.P50, r.LastSubMs.Max)
		row("time to first subscriber", "p50 %.2f ms; publish gap p50 %.2f ms", r.FirstSubMs, r.GapMs)
		row("lost / duplicated", "%d / %d (foreign %d, resets %d)", r.Lost, r.Duplicated, r.Foreign, r.Resets)
		if r.ServerProcesses > 0 {
			row("server CPU", "%.2fs, %.2f µs per delivery", r.ServerCPUSeconds, r.ServerCPUPerDel)
		}
	}
	row("client CPU", "%.2fs", r.ClientCPUSeconds)
	if r.PhaseSeconds > 0 {
		row("busy while publishing", "server %.0f %%, client %.0f %% of a core over %.1fs", 100*r.ServerBusy, 100*r.ClientBusy, r.PhaseSeconds)
	}
	if c := r.ServerCore; c != nil {
		row("server core", "cpu%d %.0f %% busy (%.0f %% softirq), %.2f µs per delivery", r.ServerCoreNumber, 100*c.Busy, 100*c.Softirq, r.ServerCorePerDel)
	}
	if c := r.ClientCore; c != nil {
		row("client core", "cpu%d %.0f %% busy (%.0f %% softirq)", r.ClientCoreNumber, 100*c.Busy, 100*c.Softirq)
	}
	for _, e := range r.Errors {
		row("error", "%s", e)
	}
	tw.Flush()
}

func kib(v int64) string {
	if v >= 10<<10 {
		return fmt.Sprintf("%.1f MiB", float64(v)/1024)
	}
	return fmt.Sprintf("%d KiB", v)
}

// writeJSON writes the report to path.
func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// readReport reads a report written by writeJSON.
func readReport(path string) (*report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

func nowStamp() string { return time.Now().UTC().Format(time.RFC3339) }

// median of values, which it sorts; 0 for none.
func median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	slices.Sort(values)
	return values[(len(values)-1)/2]
}
