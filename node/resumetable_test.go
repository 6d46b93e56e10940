package node

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"testing"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestResumeTableHoldsWhatTheLimitsAdmit: d admits more circuits from one
// source than circuit.MaxResumablePerSource (its MaxCircuitsPerSource is
// raised above it, as the benchmark suite raises it to hold 10,000 idle
// circuits from one source). Each resumable circuit d admits must be
// resumable: before, d's table of resumable circuits was bounded by the
// package's constants whatever the limits, d registered only the first
// 1,024 of m's circuits, and the rest were accepted and carried their
// bytes but were silently not resumable: when the relay r reset every
// circuit it carried (as on its shutdown), their resumes were refused.
// Now the table holds what the limits admit (each source's circuits and
// those waiting for a resume), and every circuit resumes and carries its
// bytes. The nodes link in memory: the table and the resumes are the
// subject, not the transport, and the thousand circuits opened and
// resumed over QUIC links took 2.4 times the CPU.
func TestResumeTableHoldsWhatTheLimitsAdmit(t *testing.T) {
	const n = circuit.MaxResumablePerSource + 8
	c := newCluster(t, false)
	c.tweak = func(cfg *Config) {
		// Every circuit may wait for its resume at d, and open a new path
		// through r.
		cfg.Limits.MaxCircuitsPerSource = n
		cfg.Limits.MaxParked = n
		cfg.Limits.MaxParkedPerSource = n
		// and the buffers of all of them resuming at once fit m's share of
		// d's budget.
		cfg.Limits.ResumeBufferPerSource = DefaultResumeBuffer
		// A thousand resumes at once on a loaded machine: d waits for each
		// resume frame as long as the test waits, and m's redials too:
		// one given up at the 10 s default is started over, which adds
		// to the work that made it slow (at load 20, 699 to 1,024 of the
		// circuits ran out of their resume timeout that way). Each
		// circuit resumes within a few such attempts; r refuses the
		// first of them while the reset circuits still count there.
		cfg.Limits.HeaderTimeout = patience
		cfg.DialTimeout = patience
		cfg.ResumeTimeout = 3 * patience
	}
	c.build("m-r", "r-d")
	c.waitRoute("m", "d", 2)
	conns := make([]net.Conn, n)
	defer func() {
		for _, cn := range conns {
			if cn != nil {
				cn.Close()
			}
		}
	}()
	echo := func(cn net.Conn) error {
		if _, err := cn.Write([]byte("x")); err != nil {
			return err
		}
		_, err := io.ReadFull(cn, make([]byte, 1))
		return err
	}
	// each runs f on m's circuits a few at a time and returns the errors.
	each := func(f func(i int) error) []error {
		const par = 8
		errs := make([]error, n)
		for i := 0; i < n; i += par {
			var wg sync.WaitGroup
			for j := i; j < min(i+par, n); j++ {
				wg.Go(func() { errs[j] = f(j) })
			}
			wg.Wait()
		}
		return errs
	}
	// Each is registered at d once its hello is read, which the echo of
	// its first byte proves.
	for i, err := range each(func(i int) error {
		cn, err := c.nodes["m"].Dial(ctxT(t, patience), "d", EchoService)
		if err != nil {
			return err
		}
		conns[i] = cn
		return echo(cn)
	}) {
		if err != nil {
			t.Fatalf("m's circuit %d to d: %v", i, err)
		}
	}
	registered := c.nodes["d"].resumeTable.Len()
	c.nodes["r"].circuits.resetAll()
	failed := 0
	var first error
	for _, err := range each(func(i int) error { return echo(conns[i]) }) {
		if err != nil {
			failed++
			first = cmp.Or(first, err)
		}
	}
	var dropped []string
	for _, reason := range []string{dropSourceShare, dropNodeBudget, dropParkedSource, dropParkedNode} {
		if v := counterValue(c.nodes["d"].rbudget.drops.WithLabelValues(reason)); v > 0 {
			dropped = append(dropped, fmt.Sprintf("%s %v", reason, v))
		}
	}
	t.Logf("m holds %d circuits to d through r; d's table of resumable circuits holds %d; after r reset them all, %d failed (first: %v); d's budget ended %d %v",
		n, registered, failed, first, len(dropped), dropped)
	if failed > 0 {
		t.Fatalf("%d of m's %d circuits to d failed after r reset them: %v, want every one resumed", failed, n, first)
	}
}

// TestAddSatSaturates: the resume table's bounds are sums of limits; a
// limit raised to the largest int (no bound in effect) must give the
// largest bound, not a wrapped negative one that max() then replaces
// with circuit.MaxResumable.
func TestAddSatSaturates(t *testing.T) {
	for _, c := range []struct{ a, b, want int }{
		{16384, 1024, 17408},
		{0, 0, 0},
		{math.MaxInt, 1024, math.MaxInt},
		{1024, math.MaxInt, math.MaxInt},
		{math.MaxInt - 1, 1, math.MaxInt},
		{math.MaxInt - 1, 2, math.MaxInt},
	} {
		if got := addSat(c.a, c.b); got != c.want {
			t.Errorf("addSat(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
