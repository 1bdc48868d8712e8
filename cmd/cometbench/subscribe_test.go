package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for cometbench itself when a
// -procs run re-executes it.
func TestMain(m *testing.M) {
	if os.Getenv("COMETBENCH_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// fanOut runs one small workload in this process against base and returns
// what the subscribers saw.
func fanOut(t *testing.T, base, transport string, n, m int) (groupResult, pubResult) {
	t.Helper()
	tgt, err := newTarget(targetCometbox, transport, base, "", "")
	if err != nil {
		t.Fatal(err)
	}
	codec := newPayloadCodec(newRunToken())
	sources, _ := parseSources("127.0.0.2-127.0.0.3")
	tr := newTracker(codec, m, n)
	env, err := newSubEnv(tgt, "bench", &dialer{sources: sources, timeout: 5 * time.Second}, tr, n, 100, 16, 0)
	if err != nil {
		t.Fatal(err)
	}
	fl := newLocalFleet(env, n)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := fl.connect(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	pub := newPublisher(tgt, codec, "bench", 100, 2)
	if err := probeAll(ctx, pub, fl, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	fl.freeze()
	pr := pub.run(ctx, pubPlan{Messages: m, Concurrency: 2, Window: 5, WindowTimeout: 2 * time.Second}, fl.completions())
	g, err := fl.finish(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return g, pr
}

func TestSubscribersReceiveEveryMessageOnce(t *testing.T) {
	for _, transport := range []string{transportSSE, transportStream, transportLongPoll, transportWS} {
		for _, cut := range []int{0, 7} {
			t.Run(fmt.Sprintf("%s/cut=%d", transport, cut), func(t *testing.T) {
				srv := newMockComet(t, cut)
				const n, m = 30, 25
				g, pr := fanOut(t, srv.URL, transport, n, m)
				if pr.Published != m || pr.Errors != 0 {
					t.Errorf("published %d with %d errors, want %d and none", pr.Published, pr.Errors, m)
				}
				if g.Lost != 0 || g.Dups != 0 || g.Unique != n*m {
					t.Errorf("lost %d, duplicated %d, delivered %d; want 0, 0, %d (errors: %v)", g.Lost, g.Dups, g.Unique, n*m, g.Errors)
				}
				if g.Latency.N != n*m {
					t.Errorf("%d latencies recorded, want %d", g.Latency.N, n*m)
				}
				for seq := 1; seq <= m; seq++ {
					if g.LastRecv[seq] < pr.Stamps[seq] {
						t.Fatalf("message %d: last received %d before it was stamped %d", seq, g.LastRecv[seq], pr.Stamps[seq])
					}
				}
				// A stream cut every 7 messages has to resume, by cursor.
				if cut > 0 && transport != transportLongPoll && g.Reconnects == 0 {
					t.Errorf("streams were cut but nobody reconnected")
				}
			})
		}
	}
}

func TestRunWithChildProcessesAggregatesTheirResults(t *testing.T) {
	t.Setenv("COMETBENCH_TEST_AS_MAIN", "1")
	srv := newMockComet(t, 0)
	out := filepath.Join(t.TempDir(), "run.json")
	cfg, err := parseFlags([]string{
		"-target", "cometbox", "-transport", "sse", "-base", srv.URL,
		"-n", "40", "-m", "15", "-procs", "2", "-window", "3",
		"-settle", "100ms", "-src", "127.0.0.2-127.0.0.4", "-q",
		"-pid", fmt.Sprint(os.Getpid()), "-json", out,
	}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if code := runBench(cfg); code != 0 {
		t.Fatalf("runBench exit code %d", code)
	}
	r, err := readReport(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.ConnectionsHeld != 40 || r.Counted != 40 || r.Deliveries != 40*15 || r.Lost != 0 || r.Duplicated != 0 {
		t.Errorf("report: held %d, counted %d, delivered %d, lost %d, dup %d; want 40, 40, 600, 0, 0 (errors %v)",
			r.ConnectionsHeld, r.Counted, r.Deliveries, r.Lost, r.Duplicated, r.Errors)
	}
	if r.DeliveriesPS <= 0 || r.LatencyMs.P99 <= 0 || r.LatencyMs.P99 > r.LatencyMs.Max {
		t.Errorf("report: %v deliveries/s, p99 %v ms, max %v ms", r.DeliveriesPS, r.LatencyMs.P99, r.LatencyMs.Max)
	}
	if len(r.LastSubMs.ByMessage) != 15 || slices.Contains(r.LastSubMs.ByMessage, 0) || math.Abs(slices.Max(r.LastSubMs.ByMessage)-r.LastSubMs.Max) > 0.05 {
		t.Errorf("time to last subscriber by message: %v, want 15 times, none 0, the largest %v", r.LastSubMs.ByMessage, r.LastSubMs.Max)
	}
	if r.RSSIdleKiB <= 0 || r.ServerProcesses < 1 {
		t.Errorf("server sample of the test process: RSS %d KiB from %d processes", r.RSSIdleKiB, r.ServerProcesses)
	}
}
