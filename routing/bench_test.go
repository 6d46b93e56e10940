package routing_test

import (
	"fmt"
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
	rounds, messages, bumps int
	cpu                     time.Duration
}

func (c *convergence) add(d convergence) {
	c.rounds += d.rounds
	c.messages += d.messages
	c.bumps += d.bumps
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
func converge(b *testing.B, n *routingtest.Network, sent0, bumps0 int, cpu0 time.Duration) convergence {
	rounds, ok := n.RunUntilQuiet(5000)
	if !ok {
		b.Fatalf("not quiet after %d rounds", rounds)
	}
	return convergence{rounds, n.Counters.Sent - sent0, seqnoBumps(n) - bumps0, cpuTime() - cpu0}
}

func report(b *testing.B, sum convergence) {
	runs := float64(b.N)
	b.ReportMetric(float64(sum.rounds)/runs, "rounds/op")
	b.ReportMetric(float64(sum.messages)/runs, "msgs/op")
	b.ReportMetric(float64(sum.cpu.Milliseconds())/runs, "cpu-ms/op")
	b.ReportMetric(float64(sum.bumps)/runs, "seqno-bumps/op")
}

// benchCfg is propCfg with real Ed25519 attestations, so that the CPU time
// includes one signature check per new (origin, seqno) at every node.
func benchCfg() routing.Config {
	c := propCfg()
	c.Certifier = testCertifier
	return c
}

// BenchmarkConverge measures update rounds, messages and CPU time to
// converge on sparse random graphs (average degree 3, link costs 10..209,
// rounds of 50 ms), from cold start and after the busiest node dies.
func BenchmarkConverge(b *testing.B) {
	for _, nodes := range []int{100, 1000} {
		spec := graphSpec{nodes: nodes, avgDegree: 3, seed: 77}
		b.Run(fmt.Sprintf("nodes=%d/cold", nodes), func(b *testing.B) {
			var sum convergence
			for range b.N {
				cpu0 := cpuTime()
				n := buildRandom(b, spec, benchCfg())
				sum.add(converge(b, n, 0, 0, cpu0))
			}
			report(b, sum)
		})
		b.Run(fmt.Sprintf("nodes=%d/death", nodes), func(b *testing.B) {
			var sum convergence
			for range b.N {
				b.StopTimer()
				n := buildRandom(b, spec, benchCfg())
				converge(b, n, 0, 0, 0)
				b.StartTimer()
				cpu0, sent0, bumps0 := cpuTime(), n.Counters.Sent, seqnoBumps(n)
				n.Kill(busiest(n))
				sum.add(converge(b, n, sent0, bumps0, cpu0))
			}
			report(b, sum)
		})
	}
}
