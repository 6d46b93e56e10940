package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The spin role is the background load of the busy latency runs: one
// thread pinned to one core at nice 19 that loops until stdin closes. It
// keeps the core out of its idle states, so that a woken process does not
// wait for the core to wake up, and yields to every normal-priority
// process that wants the core.
//
//	circuitmesh-bench spin --cpu 0
func spinRole(args []string) error {
	fs := flag.NewFlagSet("spin", flag.ContinueOnError)
	cpu := fs.Int("cpu", 0, "the core to pin the loop to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var stop atomic.Bool
	started := make(chan error, 1)
	go func() {
		// Affinity and nice value are per thread on Linux: set both on the
		// thread that loops, which the goroutine keeps to itself.
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(*cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			started <- fmt.Errorf("spin: pin to core %d: %w", *cpu, err)
			return
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19); err != nil {
			started <- fmt.Errorf("spin: nice 19: %w", err)
			return
		}
		started <- nil
		for !stop.Load() {
		}
	}()
	if err := <-started; err != nil {
		return err
	}
	defer stop.Store(true)
	return serveControl(os.Stdin, os.Stdout, reply{},
		func(req request) (reply, error) { return reply{}, fmt.Errorf("unknown op %q", req.Op) })
}
