package main

import (
	"bufio"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stalledCollector is an OTLP endpoint that accepts TCP connections and
// never answers: every export to it waits for its timeout.
func stalledCollector(t *testing.T) []string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + ln.Addr().String(), "OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_TRACES_SAMPLER="}
}

// stopWithCircuit starts a exporting to a stalled collector, with a
// circuit open to b, sends it SIGTERM and, when twice, SIGINT once it
// drains; it returns how long a took to exit after its last signal.
func stopWithCircuit(t *testing.T, twice bool, extra ...string) time.Duration {
	t.Helper()
	l := newLab(t, "e2e")
	b := l.start("b", "")
	a := l.startWith(stalledCollector(t), "a", "", append([]string{"--link", b.addr}, extra...)...)
	a.waitRoute(t, "b", anyRoute)
	o := l.openDial(t, a, "b", "echo")
	o.echo(t, "hello") // a's dial span is pending export from now on
	a.cmd.Process.Signal(syscall.SIGTERM)
	if twice {
		a.waitLog(t, 1, "node draining")
		a.cmd.Process.Signal(syscall.SIGINT)
	}
	start := time.Now()
	select {
	case <-a.exited:
	case <-time.After(time.Minute):
		t.Fatalf("a still running a minute after its stop signal:\n%s", a.log.String())
	}
	return time.Since(start)
}

// A second stop signal ends the daemon within the goodbye timeout (3 s),
// a collector that never answers included: the flush of pending spans
// gets at most 1 s of it. Before, the flush waited its own 5 s after the
// goodbye (the exit came 5.05 s after the signal).
func TestSecondSignalExitWaitsNoLongerForAStalledCollector(t *testing.T) {
	if took := stopWithCircuit(t, true); took > goodbyeTimeout {
		t.Fatalf("with a stalled collector the daemon exited %v after a second signal, want within the goodbye timeout %v", took, goodbyeTimeout)
	}
}

// With a collector that never answers and a circuit that stays open for
// the whole drain (10 s by default), SIGTERM ends the daemon within the
// TimeoutStopSec of the systemd unit, before systemd kills it. Before,
// the unit allowed 15 s and the drain and the flush of pending spans took
// 15.04 s.
func TestStopWithAStalledCollectorWithinTheUnitsStopTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("drains for 10 s")
	}
	limit := unitStopTimeout(t)
	if took := stopWithCircuit(t, false); took >= limit {
		t.Fatalf("with a stalled collector and a circuit open the daemon exited %v after SIGTERM; the systemd unit kills it after %v", took, limit)
	}
}

// unitStopTimeout is the TimeoutStopSec of deploy/systemd's unit.
func unitStopTimeout(t *testing.T) time.Duration {
	t.Helper()
	f, err := os.Open("../../deploy/systemd/circuitmesh.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "TimeoutStopSec="); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("TimeoutStopSec=%s: %v", v, err)
			}
			return d
		}
	}
	t.Fatal("the systemd unit sets no TimeoutStopSec")
	return 0
}
