package node

import (
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// forgedRetryRelay builds a–r–d where r, a's neighbour, grants a few
// circuit streams on its link (Limits.MaxCircuitsPerLink 4, its QUIC
// stream limit) and, once forge is set, answers every open it relays
// with a forged result header of code retry and passes nothing else back.
func forgedRetryRelay(t *testing.T, forge *atomic.Bool) *cluster {
	t.Helper()
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "r" {
			cfg.Limits.MaxCircuitsPerLink = 4
			cfg.hooks = &hooks{relay: func(in, out links.Stream) (links.Stream, links.Stream) {
				if forge.Load() {
					circuit.WriteResult(in, circuit.Result{Code: circuit.Retry, Node: "d", Reason: "forged"})
					return silentStream{in}, out
				}
				return in, out
			}}
		}
	}
	c.build("a-r", "r-d")
	c.waitRoute("a", "d", 2)
	return c
}

// forgedRetryFullLink builds forgedRetryRelay's cluster, has a hold three
// circuits to d through r (closed when the test ends), one stream short of
// r's limit on the link, then has r forge its retries, and returns a.
func forgedRetryFullLink(t *testing.T) *Node {
	t.Helper()
	var forge atomic.Bool
	c := forgedRetryRelay(t, &forge)
	a := c.nodes["a"]
	for i := range 3 {
		conn, err := a.DialWith(ctxT(t, patience), "d", EchoService, DialOptions{NoResume: true})
		if err != nil {
			t.Fatalf("circuit %d: %v", i, err)
		}
		t.Cleanup(func() { conn.Close() })
	}
	forge.Store(true)
	return a
}

// TestForgedRetryReopenReadKeepsItsDeadline: a holds three circuits
// through r (r's stream limit on the link is four), then opens an early,
// fail-fast circuit to d and reads it with a read deadline of 300 ms. r
// answers the open with a forged retry, and the conn opens again by
// itself (Security.Reopen), waiting for a stream on the link for up to
// DialTimeout (10 s). The Read returns at its deadline: it used to return
// after 10 s, the reopen running inside it. With no circuits held
// (TestForgedRetryReopenControl) the same Read returns at once.
func TestForgedRetryReopenReadKeepsItsDeadline(t *testing.T) {
	a := forgedRetryFullLink(t)
	readAfterForgedRetry(t, a)
}

// TestForgedRetryReopenControl is the control: no circuit held, the Read
// ends at once with the (forged) refusal.
func TestForgedRetryReopenControl(t *testing.T) {
	var forge atomic.Bool
	forge.Store(true)
	c := forgedRetryRelay(t, &forge)
	readAfterForgedRetry(t, c.nodes["a"])
}

func readAfterForgedRetry(t *testing.T, a *Node) {
	t.Helper()
	conn := dialEarly(t, a)
	defer conn.Close()
	const wait = 300 * time.Millisecond
	start := time.Now()
	conn.SetReadDeadline(start.Add(wait))
	_, err := conn.Read(make([]byte, 1))
	took := time.Since(start)
	t.Logf("Read with a deadline of %v returned after %v: %v", wait, took.Round(time.Millisecond), err)
	if took > 3*time.Second {
		t.Errorf("Read with a deadline of %v returned after %v", wait, took.Round(time.Millisecond))
	}
}

// reopening reports whether a goroutine is in an early conn's reopen
// after a retry (circuit.Security.Reopen).
func reopening() bool {
	return goroutinesIn("circuit.(*Conn).reopenLocked") > 0
}

// goroutinesIn counts the goroutines of the process whose stack holds
// every one of funcs.
func goroutinesIn(funcs ...string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			count := 0
			for _, g := range strings.Split(string(buf[:n]), "\n\n") {
				if !slices.ContainsFunc(funcs, func(f string) bool { return !strings.Contains(g, f) }) {
					count++
				}
			}
			return count
		}
		buf = make([]byte, 2*len(buf))
	}
}

// eventually reports whether cond holds within d.
func eventually(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// TestForgedRetryReopenEndsAtClose: the same open, read with no
// deadline; the application closes the conn once the reopen waits for a
// stream. Close ends the Read and the reopen's wait, within seconds: the
// Read used to return 9.7 s later, when the reopen's own DialTimeout
// ended its wait.
func TestForgedRetryReopenEndsAtClose(t *testing.T) {
	a := forgedRetryFullLink(t)
	conn := dialEarly(t, a)
	done := make(chan error, 1)
	go func() {
		_, err := conn.Read(make([]byte, 1))
		done <- err
	}()
	if !eventually(3*time.Second, reopening) {
		t.Fatal("no reopen under way 3 s after the forged retry")
	}
	start := time.Now()
	conn.Close()
	var err error
	select {
	case err = <-done:
	case <-time.After(8 * time.Second):
		t.Fatalf("Read still blocked %v after Close", time.Since(start).Round(time.Millisecond))
	}
	took := time.Since(start)
	t.Logf("Read returned %v after Close: %v", took.Round(time.Millisecond), err)
	if took > 3*time.Second {
		t.Errorf("Read returned %v after Close", took.Round(time.Millisecond))
	}
	if !eventually(3*time.Second, func() bool { return !reopening() }) {
		t.Errorf("the reopen still waits for a stream %v after Close", time.Since(start).Round(time.Millisecond))
	}
}
