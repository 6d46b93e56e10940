package routing_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	u, s := cpuTimes()
	return u + s
}

// cpuTimes returns the process's user and system CPU times.
func cpuTimes() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

type convergence struct {
	nodes                   int
	rounds, messages, bumps int
	bytes                   int64
	cpu                     time.Duration
	sys                     time.Duration // of cpu: system time
	engine                  routing.Stats // summed over the nodes
}

func (c *convergence) add(d convergence) {
	c.nodes = d.nodes
	c.rounds += d.rounds
	c.messages += d.messages
	c.bumps += d.bumps
	c.bytes += d.bytes
	c.cpu += d.cpu
	c.sys += d.sys
	c.engine.UpdatesIn += d.engine.UpdatesIn
	c.engine.Verified += d.engine.Verified
	c.engine.CachedVerdicts += d.engine.CachedVerdicts
	c.engine.AttestationsOut += d.engine.AttestationsOut
	c.engine.AttestationsHeld += d.engine.AttestationsHeld
	c.engine.AttestationsCrossed += d.engine.AttestationsCrossed
}

// engineStats sums the counters of every live engine.
func engineStats(n *routingtest.Network) routing.Stats {
	var s routing.Stats
	for _, name := range n.Names() {
		st := n.Engine(name).Stats()
		s.UpdatesIn += st.UpdatesIn
		s.Verified += st.Verified
		s.CachedVerdicts += st.CachedVerdicts
		s.RefusedOrigins += st.RefusedOrigins
		s.AttestationsOut += st.AttestationsOut
		s.AttestationsHeld += st.AttestationsHeld
		s.AttestationsCrossed += st.AttestationsCrossed
	}
	return s
}

func subStats(a, b routing.Stats) routing.Stats {
	return routing.Stats{UpdatesIn: a.UpdatesIn - b.UpdatesIn, Verified: a.Verified - b.Verified,
		CachedVerdicts: a.CachedVerdicts - b.CachedVerdicts, AttestationsOut: a.AttestationsOut - b.AttestationsOut,
		AttestationsHeld: a.AttestationsHeld - b.AttestationsHeld, AttestationsCrossed: a.AttestationsCrossed - b.AttestationsCrossed}
}

func seqnoBumps(n *routingtest.Network) int {
	s := 0
	for _, name := range n.Names() {
		s += int(n.Engine(name).Stats().SeqnoBumps)
	}
	return s
}

// liveHeap returns the bytes of heap in use after a collection: the
// tables of every engine of the network still held, as the CPU time of a
// run in one process depends on them (the collector's marking and the
// page faults of a growing heap).
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// progress (CIRCUITMESH_BENCH_PROGRESS=1) prints the rounds of a
// convergence as they go.
var progress = os.Getenv("CIRCUITMESH_BENCH_PROGRESS") != ""

// cpuMark is the process's CPU time at the start of a measurement.
type cpuMark struct{ cpu, sys time.Duration }

func cpuNow() cpuMark {
	u, s := cpuTimes()
	return cpuMark{u + s, s}
}

// converge runs n until quiet and measures the work done.
func converge(b *testing.B, n *routingtest.Network, c0 routingtest.Counters, bumps0 int, st0 routing.Stats, cpu0 cpuMark) convergence {
	rounds, ok := 0, false
	for !ok && rounds < 5000 {
		n.StepRound()
		rounds++
		ok = n.Quiet()
		if progress && rounds%5 == 0 {
			// A large mesh runs for minutes: say how far it got.
			fmt.Fprintf(os.Stderr, "%s: round %d, %d messages, %d bytes, %d in flight, %.1f s CPU\n",
				b.Name(), rounds, n.Counters.Sent-c0.Sent, n.Counters.Bytes-c0.Bytes, n.InFlight(), (cpuTime() - cpu0.cpu).Seconds())
		}
	}
	if !ok {
		b.Fatalf("not quiet after %d rounds", rounds)
	}
	user, sys := cpuTimes()
	cpu := user + sys - cpu0.cpu
	sys -= cpu0.sys
	st := engineStats(n)
	if st.RefusedOrigins > 0 {
		// A full table would end the run early and make it look cheap.
		b.Fatalf("%d destinations refused for lack of room (MaxRoutes)", st.RefusedOrigins)
	}
	return convergence{len(n.Names()), rounds, n.Counters.Sent - c0.Sent, seqnoBumps(n) - bumps0,
		n.Counters.Bytes - c0.Bytes, cpu, sys, subStats(st, st0)}
}

// report gives the totals per run and, per node, messages, bytes and
// CPU time.
func report(b *testing.B, sum convergence) {
	runs := float64(b.N)
	nodes := runs * float64(sum.nodes)
	b.ReportMetric(float64(sum.rounds)/runs, "rounds/op")
	b.ReportMetric(float64(sum.messages)/runs, "msgs/op")
	b.ReportMetric(float64(sum.bytes)/runs, "bytes/op")
	b.ReportMetric(float64(sum.cpu.Milliseconds())/runs, "cpu-ms/op")
	// System time: in one process holding every engine's tables, mostly
	// the page faults of a heap that grows to hundreds of megabytes,
	// which a node alone (a table of a few hundred kilobytes) does not
	// have.
	b.ReportMetric(float64(sum.sys.Milliseconds())/runs, "sys-ms/op")
	b.ReportMetric(float64(sum.bumps)/runs, "seqno-bumps/op")
	b.ReportMetric(float64(sum.messages)/nodes, "msgs/node")
	b.ReportMetric(float64(sum.bytes)/nodes, "bytes/node")
	b.ReportMetric(float64(sum.cpu.Microseconds())/nodes, "cpu-us/node")
	b.ReportMetric(float64(sum.engine.UpdatesIn)/nodes, "updates-in/node")
	// Attestations sent, those received that the receiver held, and of
	// those the ones it had sent the same neighbour in the same round
	// (crossed); the rest came from two neighbours in the same round.
	b.ReportMetric(float64(sum.engine.AttestationsOut)/nodes, "atts-out/node")
	b.ReportMetric(float64(sum.engine.AttestationsHeld)/nodes, "atts-held/node")
	b.ReportMetric(float64(sum.engine.AttestationsCrossed)/nodes, "atts-crossed/node")
	// Verifications: the engines of this process share verdicts (the
	// verdict cache), so the Certifier ran only for the uncached ones. A
	// node running alone checks every attestation it accepts itself:
	// cpu-ms-alone/op is the CPU time had every engine done so.
	checks := sum.engine.Verified - sum.engine.CachedVerdicts
	vc := verifyCost()
	alone := sum.cpu + time.Duration(sum.engine.CachedVerdicts)*vc
	b.ReportMetric(float64(sum.engine.Verified)/nodes, "verified/node")
	b.ReportMetric(float64(checks)/runs, "verify-calls/op")
	b.ReportMetric(float64(vc.Nanoseconds())/1e3, "us/verify")
	b.ReportMetric(float64(alone.Milliseconds())/runs, "cpu-ms-alone/op")
	b.ReportMetric(float64(alone.Microseconds())/nodes, "cpu-us-alone/node")
}

var verifyCostOnce = sync.OnceValue(func() time.Duration {
	const n = 100
	att, _ := testCertifier.Attest("n0001", 0, 7)
	best := time.Duration(1 << 62)
	for range 5 {
		cpu0 := cpuTime()
		for range n {
			if testCertifier.Verify("n0001", 0, 7, att) != nil {
				panic("attestation does not verify")
			}
		}
		best = min(best, (cpuTime()-cpu0)/n)
	}
	return best
})

// verifyCost is the CPU time of one check of testCertifier (Ed25519), the
// least of five batches, as other work on the machine inflates CPU times.
func verifyCost() time.Duration { return verifyCostOnce() }

// benchCfg is propCfg with real Ed25519 attestations, so that the CPU time
// includes one signature check per new (origin, seqno) at every node, and
// with room in the table for every node of a mesh of the given size (the
// default MaxRoutes, 4096, would cut a 5000-node mesh short).
func benchCfg(nodes int) routing.Config {
	c := propCfg()
	c.Certifier = testCertifier
	c.MaxRoutes = max(routing.DefaultMaxRoutes, 2*nodes)
	return c
}

// BenchmarkConverge measures update rounds, messages, bytes and CPU time
// (of the whole process: engines, certifier and simulated network) to
// converge on sparse random graphs (average degree 3, link costs 10..209,
// rounds of 50 ms), from cold start (building the graph included) and
// after the busiest node dies (CIRCUITMESH_BENCH_PROGRESS=1 prints every
// fifth round). 5000 nodes run only with
// CIRCUITMESH_BENCH_5000=1, other sizes with CIRCUITMESH_BENCH_NODES:
// 25 million (node, destination) pairs of about 230 bytes each (table
// entry with its routes, its side entry, name index slot) take more than
// 5 GiB in one process, plus the messages in flight and the collector's
// headroom (2000 nodes took 2.6 GB before table entries took 112 bytes
// instead of 192).
func BenchmarkConverge(b *testing.B) {
	sizes := []int{100, 1000}
	if os.Getenv("CIRCUITMESH_BENCH_5000") != "" {
		sizes = append(sizes, 5000)
	}
	// Other sizes, comma-separated (CIRCUITMESH_BENCH_NODES=2000,3000),
	// to see how the cost per node grows with the mesh.
	for f := range strings.SplitSeq(os.Getenv("CIRCUITMESH_BENCH_NODES"), ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && v > 1 {
			sizes = append(sizes, v)
		}
	}
	for _, nodes := range sizes {
		spec := graphSpec{nodes: nodes, avgDegree: 3, seed: 77}
		b.Run(fmt.Sprintf("nodes=%d/cold", nodes), func(b *testing.B) {
			var sum convergence
			var live uint64
			for range b.N {
				cpu0 := cpuNow()
				n := buildRandom(b, spec, benchCfg(nodes))
				sum.add(converge(b, n, routingtest.Counters{}, 0, routing.Stats{}, cpu0))
				b.StopTimer()
				live += liveHeap()
				runtime.KeepAlive(n)
				b.StartTimer()
			}
			report(b, sum)
			b.ReportMetric(float64(live)/float64(b.N)/1e6, "live-MB/op")
		})
		b.Run(fmt.Sprintf("nodes=%d/death", nodes), func(b *testing.B) {
			var sum convergence
			for range b.N {
				b.StopTimer()
				n := buildRandom(b, spec, benchCfg(nodes))
				converge(b, n, routingtest.Counters{}, 0, routing.Stats{}, cpuNow())
				b.StartTimer()
				victim := busiest(n)
				cpu0, c0, bumps0, st0 := cpuNow(), n.Counters, seqnoBumps(n), engineStats(n)
				st0 = subStats(st0, n.Engine(victim).Stats())
				n.Kill(victim)
				sum.add(converge(b, n, c0, bumps0, st0, cpu0))
			}
			report(b, sum)
		})
	}
}
