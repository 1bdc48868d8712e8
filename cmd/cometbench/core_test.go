package main

import (
	"bufio"
	"math"
	"strings"
	"testing"
)

func TestCoreUse(t *testing.T) {
	before := "cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 100 0 50 800 50 0 0 0 0 0\ncpu1 1 1 1 1 1 1 1 1 0 0\n"
	after := "cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 160 0 80 830 50 0 30 0 0 0\ncpu1 1 1 1 1 1 1 1 1 0 0\n"
	t0, err := parseCoreTimes(bufio.NewScanner(strings.NewReader(before)), 0)
	if err != nil {
		t.Fatal(err)
	}
	t1, err := parseCoreTimes(bufio.NewScanner(strings.NewReader(after)), 0)
	if err != nil {
		t.Fatal(err)
	}
	// 150 ticks passed: 60 user, 30 system, 30 softirq busy; 30 idle.
	got := t0.use(t1, 100)
	want := coreUse{Busy: 0.8, Softirq: 0.2, BusySeconds: 1.2}
	if math.Abs(got.Busy-want.Busy) > 1e-9 || math.Abs(got.Softirq-want.Softirq) > 1e-9 || math.Abs(got.BusySeconds-want.BusySeconds) > 1e-9 {
		t.Fatalf("use = %+v, want %+v", got, want)
	}
	if _, err := parseCoreTimes(bufio.NewScanner(strings.NewReader(before)), 7); err == nil {
		t.Fatal("a missing cpu7 line is not an error")
	}
}
