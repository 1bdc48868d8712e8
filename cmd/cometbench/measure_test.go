package main

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

func TestHistogramPercentilesWithinBucketError(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []time.Duration // recorded once each
		q      float64
		want   time.Duration
	}{
		{"single", []time.Duration{5 * time.Millisecond}, 0.5, 5 * time.Millisecond},
		{"exact small", []time.Duration{10 * time.Microsecond, 20 * time.Microsecond, 30 * time.Microsecond}, 0.5, 20 * time.Microsecond},
		{"p99 of 1..100 ms", msRange(1, 100), 0.99, 99 * time.Millisecond},
		{"p50 of 1..100 ms", msRange(1, 100), 0.50, 50 * time.Millisecond},
		{"p90 of 1..100 ms", msRange(1, 100), 0.90, 90 * time.Millisecond},
		{"max is never exceeded", []time.Duration{1001 * time.Microsecond}, 1, 1001 * time.Microsecond},
		{"negative counts as zero", []time.Duration{-time.Second}, 0.5, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h histogram
			for _, v := range tc.values {
				h.record(v)
			}
			s := h.snapshot()
			got := time.Duration(s.percentile(tc.q)) * time.Microsecond
			if diff := got - tc.want; diff < 0 || float64(diff) > float64(tc.want)/64+float64(time.Microsecond) {
				t.Errorf("p%.0f = %v, want %v (+1/64)", tc.q*100, got, tc.want)
			}
		})
	}
}

func msRange(lo, hi int) []time.Duration {
	var out []time.Duration
	for i := lo; i <= hi; i++ {
		out = append(out, time.Duration(i)*time.Millisecond)
	}
	return out
}

func TestHistogramBucketsCoverEveryValueInOrder(t *testing.T) {
	prev := -1
	for _, us := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<20 + 12345, 1 << 40, 1<<47 - 1} {
		i := histIndex(us)
		if i < prev {
			t.Fatalf("index of %d is %d, below the previous %d", us, i, prev)
		}
		prev = i
		if up := histUpper(i); up < us || float64(up-us) > float64(us)/64+1 {
			t.Errorf("value %d: bucket %d ends at %d, more than 1/64 above", us, i, up)
		}
	}
	if i := histIndex(1 << 62); i != histBuckets-1 {
		t.Errorf("a huge value lands in bucket %d, want the last (%d)", i, histBuckets-1)
	}
}

func TestHistogramSnapshotsMergeAcrossProcesses(t *testing.T) {
	var a, b histogram
	for _, v := range msRange(1, 50) {
		a.record(v)
	}
	for _, v := range msRange(51, 100) {
		b.record(v)
	}
	s := a.snapshot()
	s.merge(b.snapshot())
	if s.N != 100 || s.MaxUS != 100_000 {
		t.Fatalf("merged n = %d, max = %d µs; want 100 and 100000", s.N, s.MaxUS)
	}
	if p := s.percentile(0.5); p < 50_000 || p > 50_000+50_000/64 {
		t.Errorf("merged p50 = %d µs, want about 50000", p)
	}
	if !slices.IsSortedFunc(s.Buckets, func(x, y [2]uint64) int { return int(x[0]) - int(y[0]) }) {
		t.Error("merged buckets are not in order")
	}
}

func TestParseProcStatCountsFieldsFromTheLastParenthesis(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       procStat
		wantErr    bool
	}{
		{"plain", "1234 (caddy) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 0 0",
			procStat{PPID: 1, Ticks: 325}, false},
		{"spaces and parens in the name", "99 (nginx: (worker) x) R 98 1 1 0 -1 0 0 0 0 0 7 3 0 0",
			procStat{PPID: 98, Ticks: 10}, false},
		{"truncated", "99 (a) R 98 1", procStat{}, true},
		{"no name", "99 a R", procStat{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tc.text))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseProcStat = %+v, %v; want %+v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseVmRSS(t *testing.T) {
	got, err := parseVmRSS([]byte("Name:\tcaddy\nVmPeak:\t  9000 kB\nVmRSS:\t   51234 kB\nThreads:\t8\n"))
	if err != nil || got != 51234 {
		t.Errorf("parseVmRSS = %d, %v; want 51234", got, err)
	}
	if _, err := parseVmRSS([]byte("Name:\tkthreadd\n")); err == nil {
		t.Error("no VmRSS line: want an error")
	}
}

func TestSampleTreeReadsOwnProcessAndChildren(t *testing.T) {
	self, err := sampleTree([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if self.RSSKiB <= 0 || self.Procs != 1 {
		t.Fatalf("own sample = %+v: want RSS above 0 from one process", self)
	}
	// Burn some CPU: the tick count must move.
	deadline := time.Now().Add(60 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	again, _ := sampleTree([]int{os.Getpid()})
	if again.Ticks < self.Ticks {
		t.Errorf("CPU ticks went back from %d to %d", self.Ticks, again.Ticks)
	}

	child := exec.Command("sleep", "5")
	if err := child.Start(); err != nil {
		t.Skip("no sleep command:", err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	deadline = time.Now().Add(2 * time.Second)
	for {
		tree, err := sampleTree([]int{os.Getpid()})
		if err != nil {
			t.Fatal(err)
		}
		if tree.Procs >= 2 && tree.RSSKiB > self.RSSKiB/2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree sample %+v does not include the child", tree)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := sampleTree([]int{1 << 30}); err == nil {
		t.Error("a PID that does not exist: want an error")
	}
}
