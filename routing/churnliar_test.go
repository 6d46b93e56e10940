package routing_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// assertLoopFree follows next hops toward every destination from every
// node; a next hop that is not a node (a phantom liar) ends the walk.
func assertLoopFree(t *testing.T, n *routingtest.Network, what string) {
	t.Helper()
	names := n.Names()
	for _, d := range names {
		for _, s := range names {
			seen := map[string]bool{}
			path := []string{}
			for u := s; u != d; {
				if seen[u] {
					t.Fatalf("%s: round %d: loop toward %s: %v", what, n.Round, d, path)
				}
				seen[u] = true
				path = append(path, u)
				e := n.Engine(u)
				if e == nil {
					break
				}
				nh, ok := e.NextHop(d)
				if !ok {
					break
				}
				u = nh
			}
		}
	}
}

type liarState struct {
	victim, origin string
	seq            uint16
	until          int
}

// TestChurnWithLiarsLoopFree: on random 30-node meshes with links going
// down and up and changing cost, three nodes each have a neighbour that
// offers made-up short routes to random origins at the seqno they hold
// and then takes them back or raises them far: damping sends improvements
// at a floor above the metric used (damp.go), and no forwarding loop
// forms in any round.
func TestChurnWithLiarsLoopFree(t *testing.T) {
	seeds := int64(12)
	if testing.Short() {
		seeds = 4
	}
	for seed := int64(1); seed <= seeds; seed++ {
		spec := graphSpec{nodes: 30, avgDegree: 4, seed: 300 + seed}
		cfg := routing.Config{Certifier: plainCertifier{}, Hysteresis: []routing.Metric{30, routing.NoHysteresis}[seed%2], UpdateInterval: 2 * time.Second}
		n := buildRandom(t, spec, cfg)
		n.RunFor(10 * time.Second)
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		names := append([]string(nil), n.Names()...)
		victims := []string{names[1], names[7], names[13]}
		for _, v := range victims {
			n.Do(v, func(e *routing.Engine) { e.LinkUp(n.Now, "liar", 10, false) })
		}
		lies := map[string]*liarState{}
		var down []routingtest.Edge
		for round := 0; round < 1600; round++ {
			for _, v := range victims {
				ls := lies[v]
				switch {
				case ls != nil && round >= ls.until:
					m := routing.Metric(0xFFFF)
					if r.IntN(2) == 0 {
						m = routing.Metric(500 + r.IntN(500))
					}
					n.Do(v, func(e *routing.Engine) { _ = e.Receive(n.Now, "liar", routing.UpdateMessage(ls.origin, ls.seq, m, 1)) })
					delete(lies, v)
				case ls == nil && r.IntN(4) == 0:
					o := names[r.IntN(len(names))]
					rt, ok := n.Engine(v).Lookup(o)
					if !ok || o == v {
						continue
					}
					ls = &liarState{victim: v, origin: o, seq: rt.Seqno, until: round + 1 + r.IntN(3)}
					lies[v] = ls
					n.Do(v, func(e *routing.Engine) {
						_ = e.Receive(n.Now, "liar", routing.UpdateMessage(o, ls.seq, routing.Metric(1+r.IntN(20)), 1))
					})
				}
			}
			if round < 1200 && r.IntN(5) == 0 {
				g := n.Graph()
				a := names[r.IntN(len(names))]
				for b, c := range g[a] {
					switch r.IntN(3) {
					case 0:
						if err := n.Unlink(a, b); err == nil {
							down = append(down, routingtest.MakeEdge(a, b))
						}
					default:
						_ = n.SetCost(a, b, max(10, c+routing.Metric(r.IntN(80))-40))
					}
					break
				}
			}
			if len(down) > 0 && r.IntN(4) == 0 {
				i := r.IntN(len(down))
				_ = n.Relink(down[i].A, down[i].B)
				down = append(down[:i], down[i+1:]...)
			}
			n.StepRound()
			assertLoopFree(t, n, "seed "+string(rune('0'+seed)))
		}
		var damped uint64
		for _, s := range n.Names() {
			damped += n.Engine(s).Stats().Damped
		}
		t.Logf("seed %d: %d rounds loop-free, damped %d", seed, 1600, damped)
	}
}
