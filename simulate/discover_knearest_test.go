package simulate

import (
	"cmp"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/node/topology"
)

// defaultMaxLinks is node.DiscoveryConfig's default MaxLinks.
var defaultMaxLinks = max(topology.DefaultMax, 2*topology.DefaultTarget)

// kNearestStretch is the mean path stretch between two nodes of one region
// when every node links to its k nearest nodes of its region (the links
// taken both ways) and a route takes the path of least latency over them:
// the stretch inside a region of a mesh whose near links are its only
// links there. The policy's links inside a region are about Target − 1
// near ones plus shortcuts, so it tells how the default degree moves the
// stretch at a size the simulator is too slow for.
// Pairs the links do not connect are counted in unreachable, not in the
// mean.
func kNearestStretch(u *Underlay, k int) (stretch float64, unreachable int) {
	byRegion := map[string][]string{}
	for n, r := range u.Region {
		byRegion[r] = append(byRegion[r], n)
	}
	var sum float64
	var pairs int
	for _, nodes := range byRegion {
		slices.Sort(nodes)
		// The links, costed by their latency in nanoseconds.
		graph := linkGraph{}
		for _, a := range nodes {
			type peer struct {
				name string
				lat  time.Duration
			}
			others := make([]peer, 0, len(nodes)-1)
			for _, b := range nodes {
				if b != a {
					others = append(others, peer{b, u.Latency(a, b)})
				}
			}
			slices.SortFunc(others, func(b, c peer) int { return cmp.Compare(b.lat, c.lat) })
			for _, b := range others[:min(k, len(others))] {
				for _, e := range [][2]string{{a, b.name}, {b.name, a}} {
					if graph[e[0]] == nil {
						graph[e[0]] = map[string]uint32{}
					}
					graph[e[0]][e[1]] = uint32(b.lat)
				}
			}
		}
		d := graph.metrics().dense()
		dist := make([]uint64, len(d.adj))
		for _, a := range nodes {
			d.costs(d.index[a], dist, new(costHeap))
			for _, b := range nodes {
				switch j := d.index[b]; {
				case a == b:
				case dist[j] == unreached:
					unreachable++
				default:
					sum += float64(dist[j]) / float64(u.Latency(a, b))
					pairs++
				}
			}
		}
	}
	return sum / float64(pairs), unreachable
}

// TestKNearestStretch computes kNearestStretch on the geometric underlay
// of the discovery runs (three regions, each a disc 20 ms across, 0.5 ms
// plus the distance inside) at 100, 300 and 1000 nodes, for k = Target − 1
// near links of Target 5 to 8, and checks the figures docs/SIMULATE.md
// ("The default degree") quotes: with 4 near links (Target 5) the stretch
// inside a region of 333 nodes stays above 1.7, with 6 (Target 7) it is
// below 1.55. Run with -v for the table.
func TestKNearestStretch(t *testing.T) {
	type key struct{ n, k int }
	got := map[key]float64{}
	for _, n := range []int{100, 300, 1000} {
		eu, us := n/3, 2*n/3
		src := fmt.Sprintf("regions eu:n1..n%d us:n%d..n%d ap:n%d..n%d inside=0.5ms between=30ms..80ms spread=20ms\n", eu, eu+1, us, us+1, n)
		s, err := Parse("bound.sim", src)
		if err != nil {
			t.Fatal(err)
		}
		u := s.Steps[0].Underlay
		if u == nil || len(u.Pos) != n || u.Inside != 500*time.Microsecond {
			t.Fatalf("underlay %+v: want %d placed nodes, 0.5 ms inside", u, n)
		}
		prev := 0.0
		for k := 4; k <= 7; k++ {
			st, lost := kNearestStretch(u, k)
			got[key{n, k}] = st
			t.Logf("%4d nodes, %d near links (Target %d): stretch inside a region %.3f, %d ordered pairs not connected", n, k, k+1, st, lost)
			if st < 1 || prev != 0 && st > prev {
				t.Errorf("%d nodes, k %d: stretch %.3f, want at least 1 and no more than with k−1 (%.3f)", n, k, st, prev)
			}
			prev = st
		}
	}
	if s := got[key{1000, 4}]; s <= 1.7 {
		t.Errorf("1000 nodes, 4 near links: stretch inside a region %.3f, docs say above 1.7", s)
	}
	if s := got[key{1000, 6}]; s >= 1.55 {
		t.Errorf("1000 nodes, 6 near links: stretch inside a region %.3f, docs say below 1.55", s)
	}
}
