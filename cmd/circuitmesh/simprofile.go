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
	memPath    string
	once       sync.Once
	sigc       chan os.Signal
	usr1       chan os.Signal // SIGUSR1: a snapshot of the allocation profile
	snaps      int            // snapshots written
	done       chan struct{}
	exited     chan struct{} // closed when the signal goroutine ends
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
		p.memf, p.memPath = f, mem
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
	if p.memf != nil {
		p.usr1 = make(chan os.Signal, 1)
		signal.Notify(p.usr1, syscall.SIGUSR1)
	}
	p.exited = make(chan struct{})
	go func() {
		defer close(p.exited)
		for {
			select {
			case <-p.usr1:
				p.snapshot()
				continue
			case sig := <-p.sigc:
				p.interrupted(sig)
			case <-p.done:
			}
			return
		}
	}()
	return p, nil
}

// snapshot writes the allocation profile as it stands into the next of
// FILE.1, FILE.2, … (FILE being --memprofile's), the run going on: a
// look at the heap in the middle of a long step.
func (p *simProfiles) snapshot() {
	p.snaps++
	name := fmt.Sprintf("%s.%d", p.memPath, p.snaps)
	f, err := os.Create(name)
	if err == nil {
		runtime.GC()
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "simulate: allocation profile %s: %v\n", name, err)
		return
	}
	fmt.Fprintf(os.Stderr, "simulate: allocation profile written to %s\n", name)
}

// interrupted writes the profiles and ends the process as sig would.
func (p *simProfiles) interrupted(sig os.Signal) {
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
}

// stop writes the profiles (once) and ends the signal handling.
func (p *simProfiles) stop() error {
	err := p.write()
	if p.sigc != nil {
		signal.Stop(p.sigc)
		if p.usr1 != nil {
			signal.Stop(p.usr1)
		}
		close(p.done)
		<-p.exited // a snapshot being written is finished first
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
