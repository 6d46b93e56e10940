package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync"
	"syscall"
)

// simProfiles writes the CPU profile and the allocation profile of a
// simulate run: at its end, or when the run is interrupted (SIGINT,
// SIGTERM), so that a run stopped half way still shows where its time
// went.
type simProfiles struct {
	cpuf, memf *os.File
	once       sync.Once
	sigc       chan os.Signal
	done       chan struct{}
}

// startSimProfiles starts the CPU profile into cpu and arranges the
// allocation profile into mem (either may be empty). The caller must call
// stop.
func startSimProfiles(cpu, mem string) (*simProfiles, error) {
	p := &simProfiles{done: make(chan struct{})}
	if cpu == "" && mem == "" {
		return p, nil
	}
	if mem != "" {
		// Created now, so that a path that cannot be written fails the
		// run at its start, not after hours.
		f, err := os.Create(mem)
		if err != nil {
			return nil, fmt.Errorf("allocation profile: %w", err)
		}
		p.memf = f
	}
	if cpu != "" {
		f, err := os.Create(cpu)
		if err != nil {
			return nil, fmt.Errorf("CPU profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			if p.memf != nil {
				p.memf.Close()
			}
			return nil, fmt.Errorf("CPU profile: %w", err)
		}
		p.cpuf = f
	}
	p.sigc = make(chan os.Signal, 1)
	signal.Notify(p.sigc, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-p.sigc:
			signal.Stop(p.sigc) // a second signal ends the process at once
			if err := p.write(); err != nil {
				fmt.Fprintf(os.Stderr, "simulate: interrupted; %v\n", err)
			} else {
				fmt.Fprintln(os.Stderr, "simulate: interrupted; profiles written")
			}
			code := 130
			if s, ok := sig.(syscall.Signal); ok {
				code = 128 + int(s) // as if the signal had ended the process
			}
			os.Exit(code)
		case <-p.done:
		}
	}()
	return p, nil
}

// stop writes the profiles (once) and ends the signal handling.
func (p *simProfiles) stop() error {
	err := p.write()
	if p.sigc != nil {
		signal.Stop(p.sigc)
		close(p.done)
	}
	return err
}

func (p *simProfiles) write() (err error) {
	p.once.Do(func() {
		if p.cpuf != nil {
			pprof.StopCPUProfile()
			err = p.cpuf.Close()
		}
		f := p.memf
		if f == nil {
			return
		}
		runtime.GC()
		if werr := pprof.Lookup("allocs").WriteTo(f, 0); werr != nil {
			err = fmt.Errorf("allocation profile: %w", werr)
		}
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	})
	return err
}
