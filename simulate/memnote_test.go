package simulate

import (
	"bytes"
	"context"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// Each progress line ends with the live heap, in all and per node, so a
// long run shows where its memory stands step by step.
func TestProgressLinesGiveTheHeap(t *testing.T) {
	s, err := Parse("mem.sim", "nodes a b c d\nlink a-b b-c c-d\nwait converged\n")
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runtime.GC() // a collection has measured the heap (before one, the note says so)
	if _, err := Run(ctx, s, Config{Backend: BackendMem}, &progress); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	// One line ends each step; a wait converged that takes more than
	// 100 ms also says how far it has come, in lines of its own.
	done := regexp.MustCompile(`^\s*\d+\s+ok\s`)
	steps := 0
	for _, l := range lines {
		if done.MatchString(l) {
			steps++
		}
	}
	if steps != 3 {
		t.Fatalf("%d progress lines end a step, want 3:\n%s", steps, progress.String())
	}
	re := regexp.MustCompile(`  \[heap [0-9.]+ (B|KiB|MiB|GiB) live, [0-9.]+ (B|KiB|MiB|GiB) per node\]$`)
	for _, l := range lines {
		if !re.MatchString(l) {
			t.Errorf("progress line without the heap: %q", l)
		}
	}
}

func TestMemSize(t *testing.T) {
	for _, c := range []struct {
		n    float64
		want string
	}{{0, "0.0 B"}, {1023, "1023.0 B"}, {1536, "1.5 KiB"}, {3 << 20, "3.0 MiB"}, {12.5 * (1 << 30), "12.5 GiB"}} {
		if got := memSize(c.n); got != c.want {
			t.Errorf("memSize(%v) = %q, want %q", c.n, got, c.want)
		}
	}
}

// A measure step's progress line is followed by what it measured, so a
// long run interrupted later (which prints no report) keeps it.
func TestProgressLinesGiveMeasurement(t *testing.T) {
	s, err := Parse("measure.sim", `regions eu:n1..n4 inside=1ms
discover seed=n1 nodes=n2..n4
wait reachable timeout=1m
measure
`)
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	synctest.Test(t, func(t *testing.T) {
		rep, err := run(context.Background(), s, Config{Backend: BackendMem}, runOptions{progress: &progress, virtual: true})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("run failed:\n%s", progress.String())
		}
	})
	out := progress.String()
	_, after, ok := strings.Cut(out, "  measure")
	if !ok {
		t.Fatalf("no progress line of the measure step:\n%s", out)
	}
	for _, want := range []string{"reachable pairs", "path stretch", "degree max", "diameter"} {
		if !strings.Contains(after, want) {
			t.Errorf("progress after the measure step without %q:\n%s", want, out)
		}
	}
}
