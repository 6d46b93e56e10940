package routing_test

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type convergence struct {
	nodes                   int
	rounds, messages, bumps int
	bytes                   int64
	cpu                     time.Duration
}

func (c *convergence) add(d convergence) {
	c.nodes = d.nodes
	c.rounds += d.rounds
	c.messages += d.messages
	c.bumps += d.bumps
	c.bytes += d.bytes
	c.cpu += d.cpu
}

func seqnoBumps(n *routingtest.Network) int {
	s := 0
	for _, name := range n.Names() {
		s += int(n.Engine(name).Stats().SeqnoBumps)
	}
	return s
}

// converge runs n until quiet and measures the work done.
func converge(b *testing.B, n *routingtest.Network, c0 routingtest.Counters, bumps0 int, cpu0 time.Duration) convergence {
	rounds, ok := n.RunUntilQuiet(5000)
	if !ok {
		b.Fatalf("not quiet after %d rounds", rounds)
	}
	return convergence{len(n.Names()), rounds, n.Counters.Sent - c0.Sent, seqnoBumps(n) - bumps0,
		n.Counters.Bytes - c0.Bytes, cpuTime() - cpu0}
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
	b.ReportMetric(float64(sum.bumps)/runs, "seqno-bumps/op")
	b.ReportMetric(float64(sum.messages)/nodes, "msgs/node")
	b.ReportMetric(float64(sum.bytes)/nodes, "bytes/node")
	b.ReportMetric(float64(sum.cpu.Microseconds())/nodes, "cpu-us/node")
}

// benchCfg is propCfg with real Ed25519 attestations, so that the CPU time
// includes one signature check per new (origin, seqno) at every node.
func benchCfg() routing.Config {
	c := propCfg()
	c.Certifier = testCertifier
	return c
}

// BenchmarkConverge measures update rounds, messages, bytes and CPU time
// (of the whole process: engines, certifier and simulated network) to
// converge on sparse random graphs (average degree 3, link costs 10..209,
// rounds of 50 ms), from cold start (building the graph included) and
// after the busiest node dies. 5000 nodes run only with
// CIRCUITMESH_BENCH_5000=1: 25 million (node, destination) entries in one
// process take more than 9 GiB of memory.
func BenchmarkConverge(b *testing.B) {
	sizes := []int{100, 1000}
	if os.Getenv("CIRCUITMESH_BENCH_5000") != "" {
		sizes = append(sizes, 5000)
	}
	for _, nodes := range sizes {
		spec := graphSpec{nodes: nodes, avgDegree: 3, seed: 77}
		b.Run(fmt.Sprintf("nodes=%d/cold", nodes), func(b *testing.B) {
			var sum convergence
			for range b.N {
				cpu0 := cpuTime()
				n := buildRandom(b, spec, benchCfg())
				sum.add(converge(b, n, routingtest.Counters{}, 0, cpu0))
			}
			report(b, sum)
		})
		b.Run(fmt.Sprintf("nodes=%d/death", nodes), func(b *testing.B) {
			var sum convergence
			for range b.N {
				b.StopTimer()
				n := buildRandom(b, spec, benchCfg())
				converge(b, n, routingtest.Counters{}, 0, 0)
				b.StartTimer()
				cpu0, c0, bumps0 := cpuTime(), n.Counters, seqnoBumps(n)
				n.Kill(busiest(n))
				sum.add(converge(b, n, c0, bumps0, cpu0))
			}
			report(b, sum)
		})
	}
}
