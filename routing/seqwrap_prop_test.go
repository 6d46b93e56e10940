package routing_test

import (
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// seedFrom returns the first seed from from on with which an engine
// configured as cfg starts at a seqno in [lo, lo+span) modulo 2^16.
func seedFrom(t testing.TB, cfg routing.Config, from int64, lo, span uint16) int64 {
	t.Helper()
	for s := from; s < from+1<<22; s++ {
		cfg.Seed = s
		e, err := routing.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := e.Lookup(cfg.Self); r.Seqno-lo < span {
			return s
		}
	}
	t.Fatalf("no seed gives %s a seqno in [%d, %d+%d)", cfg.Self, lo, lo, span)
	return 0
}

// ownSeqno returns node's own seqno.
func ownSeqno(n *routingtest.Network, node string) uint16 {
	r, _ := n.Engine(node).Lookup(node)
	return r.Seqno
}

// restart kills node and, once no node reaches it, brings it back under
// the same name and links, its engine starting at a seqno in
// [lo, lo+span).
func restart(t testing.TB, n *routingtest.Network, cfg routing.Config, node string, lo, span uint16) {
	t.Helper()
	nbs := n.Graph()[node]
	cfg.Self, cfg.Leaf = node, n.IsLeaf(node)
	cfg.Seed = seedFrom(t, cfg, int64(lo)<<20, lo, span)
	n.Kill(node)
	// Down until no node routes to it any more, so that no route at a
	// seqno of its old life is left when it comes back (and no message
	// in flight from its old life: they die with its links).
	for start := n.Now; ; {
		stepChecked(t, n, 1)
		if !slices.ContainsFunc(n.Names(), func(s string) bool { _, ok := n.Engine(s).Lookup(node); return ok }) {
			break
		}
		if n.Now.Sub(start) > time.Minute {
			t.Fatalf("round %d: %s still reached a minute after it died", n.Round, node)
		}
	}
	if err := n.AddNode(cfg); err != nil {
		t.Fatal(err)
	}
	for _, b := range slices.Sorted(maps.Keys(nbs)) {
		mustLink(t, n, node, b, nbs[b])
	}
}

// requestsInProgress returns "node: origins" for every node with a seqno
// request in progress.
func requestsInProgress(n *routingtest.Network) []string {
	var out []string
	for _, s := range n.Names() {
		if open := routing.RequestsInProgress(n.Engine(s)); len(open) > 0 {
			out = append(out, s+": "+strings.Join(open, " "))
		}
	}
	return out
}

// settle steps, checking loop freedom at every round, until the network
// is quiet and no seqno request is in progress, for at most limit of
// virtual time, and returns the time it took.
func settle(t testing.TB, n *routingtest.Network, limit time.Duration) time.Duration {
	t.Helper()
	start := n.Now
	for {
		stepChecked(t, n, 1)
		if n.Quiet() && len(requestsInProgress(n)) == 0 {
			return n.Now.Sub(start)
		}
		if n.Now.Sub(start) > limit {
			t.Fatalf("round %d: not settled %v after the change: quiet %v, requests in progress at %v",
				n.Round, limit, n.Quiet(), requestsInProgress(n))
		}
	}
}

// TestPropertySeqnoWrap: seqnos compare modulo 2^16 (RFC 8966 §3.2.1).
// Every origin starts within 16 seqnos below 0xFFFF and is driven across
// the wrap by renewals (NewSeqno), seqno requests (link costs change
// under routes, so that better routes turn unfeasible) and restarts: just
// below the seqno the others hold for it, at a random seqno, or (without
// a Certifier) 0x7fff to 0x8001 past it, where "newer" stops being
// transitive (an origin 0x8000 or 0x8001 past a node's feasibility
// distance F does not raise its seqno for a request for F+1, while F
// makes its routes unfeasible: the node forgets F once it has advertised
// nothing at F for two route expiry periods). At every round next hops
// are loop-free; after each change every seqno request ends, the network
// falls quiet and every table holds the shortest paths.
func TestPropertySeqnoWrap(t *testing.T) {
	for _, v := range []struct {
		name      string
		base      routing.Config
		antipodal bool // restarts 0x7fff to 0x8001 past the held seqno too
	}{
		{"certified", routing.Config{Hysteresis: routing.NoHysteresis, UpdateInterval: 2 * time.Second, Certifier: plainCertifier{}}, false},
		{"plain", routing.Config{Hysteresis: routing.NoHysteresis, UpdateInterval: 2 * time.Second}, true},
	} {
		base := v.base
		t.Run(v.name, func(t *testing.T) {
			spec := graphSpec{nodes: sizes(40, 150), avgDegree: 3.5, seed: 71}
			spec.tune = func(c *routing.Config) {
				c.Seed = seedFrom(t, *c, c.Seed<<20, 0xfff0, 16)
			}
			n := buildRandom(t, spec, base)
			settle(t, n, time.Minute)
			checkShortest(t, n, 0)
			r := rand.New(rand.NewPCG(71, 72))
			var longest time.Duration
			for range 8 {
				names := n.Names()
				g := n.Graph()
				for _, s := range names {
					for range r.IntN(3) {
						if err := n.NewSeqno(s); err != nil {
							t.Fatal(err)
						}
					}
				}
				for range len(names) / 4 {
					a := names[r.IntN(len(names))]
					nbs := slices.Sorted(maps.Keys(g[a]))
					if len(nbs) == 0 {
						continue
					}
					b := nbs[r.IntN(len(nbs))]
					if err := n.SetCost(a, b, randomCost(r)*routing.Metric(1+r.IntN(3))); err != nil {
						t.Fatal(err)
					}
				}
				stepChecked(t, n, 5)
				for range 2 {
					victim := names[r.IntN(len(names))]
					held := ownSeqno(n, victim)
					switch k := r.IntN(3); {
					case k == 0: // just below what the others hold for it
						restart(t, n, base, victim, held-24, 16)
					case k == 1 && v.antipodal: // where "newer" stops being transitive
						restart(t, n, base, victim, held+0x7fff, 3)
					default:
						restart(t, n, base, victim, uint16(r.IntN(1<<16)), 1<<15)
					}
				}
				// A restarted origin far below the seqnos held for it
				// catches up by raises of at most 4096 a second, each
				// asked for by a retried request.
				longest = max(longest, settle(t, n, time.Minute))
				checkShortest(t, n, 0)
			}
			wrapped := 0
			for _, s := range n.Names() {
				if ownSeqno(n, s) < 0x8000 {
					wrapped++
				}
			}
			t.Logf("%d nodes, 8 rounds of changes: settled within %v each; %d origins past 0xFFFF", len(n.Names()), longest, wrapped)
			if wrapped < len(n.Names())/2 {
				t.Fatalf("only %d of %d origins crossed 0xFFFF", wrapped, len(n.Names()))
			}
		})
	}
}
