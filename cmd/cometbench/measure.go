package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Latency histogram: log-linear buckets over microseconds, in the manner of
// HdrHistogram with 6 bits of sub-bucket precision. Values below 128 µs have
// a bucket each; above, every power of two is cut into 64 buckets, so a
// reported percentile is within 1/64 (1.6 %) of the true value, and the
// whole histogram is a fixed 2,688 counters whatever the run length.
// Counters are atomic: every subscriber goroutine records into one
// histogram without a lock.
const (
	histExact   = 128 // values below this have their own bucket
	histSub     = 64  // buckets per power of two above histExact
	histMaxExp  = 40  // up to 2^47 µs, about 4.5 years
	histBuckets = histExact + histMaxExp*histSub
)

type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // µs
	max    atomic.Uint64 // µs
}

func histIndex(us uint64) int {
	if us < histExact {
		return int(us)
	}
	e := bits.Len64(us) - 7 // us>>e is in [64, 128)
	if e > histMaxExp {
		return histBuckets - 1
	}
	return histExact + (e-1)*histSub + int(us>>e) - histSub
}

// histUpper is the largest value that falls in bucket i.
func histUpper(i int) uint64 {
	if i < histExact {
		return uint64(i)
	}
	e := (i-histExact)/histSub + 1
	k := uint64((i-histExact)%histSub + histSub)
	return (k+1)<<e - 1
}

// record adds one observation of d (negative durations count as zero: the
// clocks of one machine can step).
func (h *histogram) record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.counts[histIndex(us)].Add(1)
	h.n.Add(1)
	h.sum.Add(us)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// histSnapshot is a histogram as it travels between processes and into the
// JSON report: only non-empty buckets, as [index, count] pairs.
type histSnapshot struct {
	Buckets [][2]uint64 `json:"buckets,omitempty"`
	N       uint64      `json:"n"`
	SumUS   uint64      `json:"sum_us"`
	MaxUS   uint64      `json:"max_us"`
}

func (h *histogram) snapshot() histSnapshot {
	s := histSnapshot{N: h.n.Load(), SumUS: h.sum.Load(), MaxUS: h.max.Load()}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			s.Buckets = append(s.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return s
}

// merge adds o into s.
func (s *histSnapshot) merge(o histSnapshot) {
	counts := make(map[uint64]uint64, len(s.Buckets)+len(o.Buckets))
	for _, b := range s.Buckets {
		counts[b[0]] += b[1]
	}
	for _, b := range o.Buckets {
		counts[b[0]] += b[1]
	}
	s.Buckets = s.Buckets[:0]
	for i, c := range counts {
		s.Buckets = append(s.Buckets, [2]uint64{i, c})
	}
	sort.Slice(s.Buckets, func(a, b int) bool { return s.Buckets[a][0] < s.Buckets[b][0] })
	s.N += o.N
	s.SumUS += o.SumUS
	s.MaxUS = max(s.MaxUS, o.MaxUS)
}

// percentile returns the value at quantile q (0..1) in µs: the upper bound
// of the bucket holding that rank, never above the largest value seen.
func (s *histSnapshot) percentile(q float64) uint64 {
	if s.N == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(s.N)))
	rank = max(rank, 1)
	var seen uint64
	for _, b := range s.Buckets {
		seen += b[1]
		if seen >= rank {
			return min(histUpper(int(b[0])), s.MaxUS)
		}
	}
	return s.MaxUS
}

func (s *histSnapshot) meanUS() float64 {
	if s.N == 0 {
		return 0
	}
	return float64(s.SumUS) / float64(s.N)
}

// Server process accounting from /proc (proc(5)). A server is a process
// tree: nginx's master and worker, Pushpin's runner and the condure,
// pushpin-proxy and pushpin-handler it starts. Memory and CPU are summed
// over the tree under each given PID.

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// procStat is what cometbench reads from /proc/<pid>/stat.
type procStat struct {
	PPID  int
	Ticks uint64 // utime + stime
}

// parseProcStat parses the text of /proc/<pid>/stat. The second field, the
// command name in parentheses, may itself hold spaces and parentheses, so
// fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return procStat{}, errors.New("proc stat: no command name")
	}
	fields := strings.Fields(string(b[end+1:]))
	// fields[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
	if len(fields) < 13 {
		return procStat{}, fmt.Errorf("proc stat: %d fields after the command name, want at least 13", len(fields))
	}
	ppid, err1 := strconv.Atoi(fields[1])
	utime, err2 := strconv.ParseUint(fields[11], 10, 64)
	stime, err3 := strconv.ParseUint(fields[12], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return procStat{}, fmt.Errorf("proc stat: %w", err)
	}
	return procStat{PPID: ppid, Ticks: utime + stime}, nil
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// parseVmRSS returns VmRSS, in KiB, from the text of /proc/<pid>/status:
// anonymous, file-backed and shared memory resident in RAM.
func parseVmRSS(b []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("proc status: odd VmRSS line %q", line)
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, errors.New("proc status: no VmRSS line (kernel thread or zombie)")
}

func readVmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(b)
}

// procSample is one reading of a server's process tree.
type procSample struct {
	At     time.Time
	RSSKiB int64
	Ticks  uint64
	Procs  int
}

// CPU is the CPU time in the sample, user and system.
func (s procSample) CPU() time.Duration {
	return time.Duration(s.Ticks) * time.Second / clockTicks
}

// sampleTree reads every process under (and including) the given roots.
func sampleTree(roots []int) (procSample, error) {
	s := procSample{At: time.Now()}
	if len(roots) == 0 {
		return s, nil
	}
	pids, err := descendants(roots)
	if err != nil {
		return s, err
	}
	for _, pid := range pids {
		st, err := readProcStat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		rss, err := readVmRSS(pid)
		if err != nil {
			continue
		}
		s.Ticks += st.Ticks
		s.RSSKiB += rss
		s.Procs++
	}
	if s.Procs == 0 {
		return s, fmt.Errorf("no live process under pid %v", roots)
	}
	return s, nil
}

// descendants lists roots and all their descendants, from /proc.
func descendants(roots []int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list /proc: %w", err)
	}
	children := make(map[int][]int)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil {
			continue
		}
		children[st.PPID] = append(children[st.PPID], pid)
	}
	seen := make(map[int]bool)
	var out []int
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		out = append(out, pid)
		queue = append(queue, children[pid]...)
	}
	return out, nil
}

// selfCPU is this process's own CPU time so far, user and system.
func selfCPU() time.Duration {
	st, err := readProcStat(os.Getpid())
	if err != nil {
		return 0
	}
	return time.Duration(st.Ticks) * time.Second / clockTicks
}
