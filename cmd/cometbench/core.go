package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// coreTimes are one CPU's counters from /proc/stat, in clock ticks.
//
// On loopback the kernel runs the receiving side of every segment the
// server sends in softirq on the sending core. Most of it is charged to the
// server's process, but what ksoftirqd runs is not, nor is anything else
// on that core. The core read whole shows how full it was: a server core
// well under 100 % busy during a fan-out was waiting for the client.
type coreTimes struct {
	total, idle, softirq uint64
}

// readCoreTimes reads the line of CPU n from /proc/stat.
func readCoreTimes(n int) (coreTimes, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return coreTimes{}, err
	}
	defer f.Close()
	return parseCoreTimes(bufio.NewScanner(f), n)
}

func parseCoreTimes(lines *bufio.Scanner, n int) (coreTimes, error) {
	name := "cpu" + strconv.Itoa(n)
	for lines.Scan() {
		fields := strings.Fields(lines.Text())
		if len(fields) < 8 || fields[0] != name {
			continue
		}
		// user nice system idle iowait irq softirq [steal guest guest_nice]
		var t coreTimes
		for i, f := range fields[1:] {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return coreTimes{}, fmt.Errorf("/proc/stat %s: %w", name, err)
			}
			if i >= 8 {
				break // guest time is already counted in user
			}
			t.total += v
			switch i {
			case 3, 4: // idle, iowait
				t.idle += v
			case 6:
				t.softirq = v
			}
		}
		return t, nil
	}
	if err := lines.Err(); err != nil {
		return coreTimes{}, err
	}
	return coreTimes{}, fmt.Errorf("/proc/stat has no %s", name)
}

// coreUse is how busy a core was between two readings.
type coreUse struct {
	Busy    float64 `json:"busy"`    // fraction of the interval not idle
	Softirq float64 `json:"softirq"` // fraction in softirq
	// BusySeconds is the time the core was not idle, whoever used it.
	BusySeconds float64 `json:"busy_seconds"`
}

// use compares two readings; ticksPerSecond is the kernel's USER_HZ.
func (t coreTimes) use(later coreTimes, ticksPerSecond float64) coreUse {
	total := float64(later.total - t.total)
	if total <= 0 {
		return coreUse{}
	}
	idle := float64(later.idle - t.idle)
	return coreUse{
		Busy:        (total - idle) / total,
		Softirq:     float64(later.softirq-t.softirq) / total,
		BusySeconds: (total - idle) / ticksPerSecond,
	}
}
