package main

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `simulate --cpuprofile --memprofile` writes both profiles at the end of
// a run, and also when the run is interrupted half way: a long run
// stopped by hand still shows where its time went. SIGUSR1 writes the
// allocation profile of the moment without stopping the run.
func TestE2ESimulateProfiles(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "s.sim")
	if err := os.WriteFile(script, []byte("nodes a b c\nlink a-b b-c\nwait converged\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, cpu, mem string) {
		t.Helper()
		for _, f := range []string{cpu, mem} {
			// A profile is gzipped protocol buffers.
			fh, err := os.Open(f)
			if err != nil {
				t.Fatalf("profile: %v", err)
			}
			zr, err := gzip.NewReader(fh)
			var n int64
			if err == nil {
				n, err = io.Copy(io.Discard, zr)
			}
			fh.Close()
			if err != nil || n == 0 {
				t.Errorf("%s is not a profile: %d bytes, %v", filepath.Base(f), n, err)
			}
		}
	}
	t.Run("end", func(t *testing.T) {
		cpu, mem := filepath.Join(dir, "cpu1.prof"), filepath.Join(dir, "mem1.prof")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "simulate", "--virtual", "--backend", "mem", "--cpuprofile", cpu, "--memprofile", mem, script).CombinedOutput()
		if err != nil {
			t.Fatalf("simulate: %v\n%s", err, out)
		}
		check(t, cpu, mem)
	})
	t.Run("interrupted", func(t *testing.T) {
		long := filepath.Join(dir, "long.sim")
		// Enough work that the run is still going when interrupted.
		if err := os.WriteFile(long, []byte("nodes n1..n50\nrandom edges=80\nwait converged\nwait 10m\nwait 10m\nwait 10m\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cpu, mem := filepath.Join(dir, "cpu2.prof"), filepath.Join(dir, "mem2.prof")
		cmd := exec.Command(bin, "simulate", "--backend", "mem", "--progress", "--cpuprofile", cpu, "--memprofile", mem, long)
		var errb syncBuffer // written by the process's copier while the test polls it
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Interrupt once the nodes run (the first step printed).
		deadline := time.Now().Add(time.Minute)
		for !strings.Contains(errb.String(), "nodes n1..n50") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		// SIGUSR1 writes a snapshot of the allocation profile to mem.1 and
		// the run goes on.
		if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		for !strings.Contains(errb.String(), "profile written to "+mem+".1") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("simulate ended with status 0 after SIGINT; want a failure\n%s", errb.String())
			}
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-done
			t.Fatalf("simulate did not end within a minute of SIGINT\n%s", errb.String())
		}
		if !strings.Contains(errb.String(), "profiles written") {
			t.Errorf("stderr does not say the profiles were written:\n%s", errb.String())
		}
		check(t, cpu, mem)
		check(t, mem+".1", mem+".1")
	})
}
