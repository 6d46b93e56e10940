package topology

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/serf/coordinate"
)

// at is a settled coordinate on a line (its error TrustError / 2):
// distance to at(y) is |x−y| ms.
func at(x float64) *coordinate.Coordinate {
	c := coordinate.NewCoordinate(coordinate.DefaultConfig())
	c.Vec[0] = x / 1000
	c.Height = 0
	c.Error = TrustError / 2
	return c
}

func routers(xs ...float64) []Member {
	var ms []Member
	for i, x := range xs {
		name := fmt.Sprintf("r%d", i)
		ms = append(ms, Member{Name: name, Addr: name, Coord: at(x)})
	}
	return ms
}

func names(ms []Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func drops(ds []Drop) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Peer)
	}
	sort.Strings(out)
	return out
}

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func TestDecide(t *testing.T) {
	// r0..r9 at 10, 20, ..., 100 ms; self at 0.
	ten := routers(10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
	cfg := Config{Target: 3, Max: 5, Long: -1, Adds: 10}
	tests := []struct {
		name      string
		in        Input
		wantAdd   []string
		wantWhy   []Why // when set, the kinds of the adds
		wantDrops []string
		dropWhy   Why // when set, the kind of every drop
	}{{
		name:    "empty node dials its nearest routers up to the target",
		in:      Input{Self: "me", Coord: at(0), Members: ten, Config: cfg},
		wantAdd: []string{"r0", "r1", "r2"},
		wantWhy: []Why{WhyTarget, WhyTarget, WhyTarget},
	}, {
		name: "a long link is added first, then the nearest",
		in:   Input{Self: "me", Coord: at(0), Members: ten, Config: Config{Target: 3, Max: 5, Long: 1, Adds: 10}},
		// r0, r1 are the near ones; the long one is r2..r9 by the hash.
		wantWhy: []Why{WhyLong, WhyTarget, WhyTarget},
	}, {
		name:    "adds per call are bounded",
		in:      Input{Self: "me", Coord: at(0), Members: ten, Config: Config{Target: 3, Max: 5, Long: -1, Adds: 1}},
		wantAdd: []string{"r0"},
	}, {
		name: "incoming links count toward the target",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: cfg,
			Links: []Link{{Peer: "r9", RTT: ms(100)}, {Peer: "r8", RTT: ms(90)}}},
		wantAdd: []string{"r0"},
	}, {
		name: "static links are on top: neither counted nor dropped",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: cfg,
			Links: []Link{{Peer: "x", Static: true, Outbound: true}, {Peer: "r9", Static: true, Outbound: true}}},
		wantAdd: []string{"r0", "r1", "r2"},
	}, {
		name: "at the maximum an incoming link claimed static is kept on top, not counted",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: Config{Target: 2, Max: 2, Long: -1},
			Links: []Link{{Peer: "r0", Outbound: true, RTT: ms(10)}, {Peer: "r1", RTT: ms(20)}, {Peer: "a", Claimed: true, Age: time.Second}}},
	}, {
		name: "claimed static links are honoured up to StaticIn, the oldest first; the newest counts and goes",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: Config{Target: 2, Max: 2, Long: -1, StaticIn: 2},
			Links: []Link{{Peer: "r0", Outbound: true, RTT: ms(10)}, {Peer: "r1", RTT: ms(20)},
				{Peer: "a", Claimed: true, Age: time.Hour}, {Peer: "b", Claimed: true, Age: time.Second}, {Peer: "c", Claimed: true, Age: time.Minute}}},
		wantDrops: []string{"b"},
		dropWhy:   WhyMax,
	}, {
		name: "many claimed static links cannot push a node past Max plus StaticIn",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: Config{Target: 1, Max: 1, Long: -1, StaticIn: 1},
			Links: []Link{{Peer: "x1", Claimed: true, Age: 5 * time.Second}, {Peer: "x2", Claimed: true, Age: 4 * time.Second},
				{Peer: "x3", Claimed: true, Age: 3 * time.Second}, {Peer: "x4", Claimed: true, Age: 2 * time.Second}}},
		wantDrops: []string{"x2", "x3"}, // x1 honoured; of the others, far (unknown) first, then by name
	}, {
		name: "with StaticIn negative no claim is honoured",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: Config{Target: 1, Max: 1, Long: -1, StaticIn: -1},
			Links: []Link{{Peer: "r0", Outbound: true, RTT: ms(10)}, {Peer: "a", Claimed: true, Age: time.Second}}},
		wantDrops: []string{"a"},
	}, {
		name: "a claim on an outgoing link is ignored",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: Config{Target: 1, Max: 1, Long: -1},
			Links: []Link{{Peer: "r0", RTT: ms(10), Age: time.Hour}, {Peer: "r9", Outbound: true, Claimed: true, RTT: ms(100), Age: time.Hour}}},
		wantDrops: []string{"r9"},
	}, {
		name: "backing-off members are skipped",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: cfg,
			Unavailable: []string{"r0", "r2"}},
		wantAdd: []string{"r1", "r3", "r4"},
	}, {
		name: "a node at its target stays put when nothing is clearly better (hysteresis)",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: cfg,
			Links: []Link{{Peer: "r0", Outbound: true, RTT: ms(10)}, {Peer: "r1", Outbound: true, RTT: ms(20)}, {Peer: "r3", Outbound: true, RTT: ms(40)}}},
	}, {
		name: "a clearly closer member is added next to a far outgoing link",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: cfg,
			Links: []Link{{Peer: "r0", Outbound: true, RTT: ms(10)}, {Peer: "r1", Outbound: true, RTT: ms(20)}, {Peer: "r9", Outbound: true, RTT: ms(100)}}},
		wantAdd: []string{"r2"},
		wantWhy: []Why{WhyReplace},
	}, {
		name: "a far outgoing link younger than MinAge is not replaced yet",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: Config{Target: 3, Max: 5, Long: -1, Adds: 10, MinAge: time.Minute},
			Links: []Link{{Peer: "r0", Outbound: true, RTT: ms(10)}, {Peer: "r1", Outbound: true, RTT: ms(20)}, {Peer: "r9", Outbound: true, RTT: ms(100), Age: 59 * time.Second}}},
	}, {
		name: "a far outgoing link older than MinAge and its spread is replaced",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: Config{Target: 3, Max: 5, Long: -1, Adds: 10, MinAge: time.Minute},
			Links: []Link{{Peer: "r0", Outbound: true, RTT: ms(10)}, {Peer: "r1", Outbound: true, RTT: ms(20)}, {Peer: "r9", Outbound: true, RTT: ms(100), Age: time.Minute + ReplaceSpread}}},
		wantAdd: []string{"r2"},
	}, {
		name: "once the closer one is up a far outgoing link that routes depend on alone is kept",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: cfg,
			Links: []Link{{Peer: "r0", Outbound: true, RTT: ms(10)}, {Peer: "r1", Outbound: true, RTT: ms(20)}, {Peer: "r2", Outbound: true, RTT: ms(30)}, {Peer: "r9", Outbound: true, RTT: ms(100), Alternates: 1, Stranded: 1}}},
	}, {
		name: "once the closer one is up the far outgoing link is dropped",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: cfg,
			Links: []Link{{Peer: "r0", Outbound: true, RTT: ms(10)}, {Peer: "r1", Outbound: true, RTT: ms(20)}, {Peer: "r2", Outbound: true, RTT: ms(30)}, {Peer: "r9", Outbound: true, RTT: ms(100), Alternates: 1}}},
		wantDrops: []string{"r9"},
		dropWhy:   WhyReplace,
	}, {
		name: "a far outgoing link no other neighbour reaches past is kept",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: cfg,
			Links: []Link{{Peer: "r0", Outbound: true, RTT: ms(10)}, {Peer: "r1", Outbound: true, RTT: ms(20)}, {Peer: "r2", Outbound: true, RTT: ms(30)}, {Peer: "r9", Outbound: true, RTT: ms(100)}}},
	}, {
		name: "the maximum is enforced on young links too",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: Config{Target: 3, Max: 3, Long: -1, MinAge: time.Hour},
			Links: []Link{{Peer: "r0", Age: time.Second, RTT: ms(10)}, {Peer: "r1", Age: time.Second, RTT: ms(20)}, {Peer: "r2", Age: time.Second, RTT: ms(30)}, {Peer: "r9", Age: time.Second, RTT: ms(100)}}},
		wantDrops: []string{"r9"},
		dropWhy:   WhyMax,
	}, {
		name: "unwanted incoming links are kept below the maximum",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: cfg,
			Links: []Link{{Peer: "r0", Outbound: true, RTT: ms(10)}, {Peer: "r1", Outbound: true, RTT: ms(20)}, {Peer: "r2", Outbound: true, RTT: ms(30)}, {Peer: "r8", RTT: ms(90)}, {Peer: "r9", RTT: ms(100)}}},
	}, {
		name: "above the maximum the worst unwanted links go, incoming first",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: cfg,
			Links: []Link{{Peer: "r0", RTT: ms(10)}, {Peer: "r1", RTT: ms(20)}, {Peer: "r2", RTT: ms(30)},
				{Peer: "r5", Outbound: true, RTT: ms(60)}, {Peer: "r6", RTT: ms(70)}, {Peer: "r7", RTT: ms(80)}, {Peer: "r8", Outbound: true, RTT: ms(90)}}},
		wantDrops: []string{"r6", "r7"},
		dropWhy:   WhyMax,
	}, {
		name: "above the maximum a young incoming link goes before an older, farther one",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: Config{Target: 2, Max: 2, Long: -1, MinAge: time.Minute},
			Links: []Link{{Peer: "r0", Outbound: true, RTT: ms(10), Age: time.Hour}, {Peer: "r8", RTT: ms(90), Age: time.Hour}, {Peer: "r3", RTT: ms(40), Age: time.Second}}},
		wantDrops: []string{"r3"},
		dropWhy:   WhyMax,
	}, {
		name: "above the maximum a link carrying circuits is kept over an idle one",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: Config{Target: 2, Max: 2, Long: -1},
			Links: []Link{{Peer: "r0", Outbound: true, RTT: ms(10)}, {Peer: "r8", RTT: ms(90), Streams: 3}, {Peer: "r3", RTT: ms(40)}}},
		wantDrops: []string{"r3"},
	}, {
		name: "above the maximum a link carrying circuits is kept over an idle wanted one",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: Config{Target: 2, Max: 2, Long: -1},
			Links: []Link{{Peer: "r0", Outbound: true, RTT: ms(10)}, {Peer: "r8", RTT: ms(90), Streams: 1}, {Peer: "r9", RTT: ms(100), Streams: 1}}},
		wantDrops: []string{"r0"},
	}, {
		name: "above the maximum a link to a member routing could not reach is kept (repair)",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: Config{Target: 2, Max: 2, Long: -1, MinAge: time.Minute},
			Links:       []Link{{Peer: "r0", Outbound: true, RTT: ms(10), Age: time.Hour}, {Peer: "r8", RTT: ms(90), Age: time.Hour}, {Peer: "r9", RTT: ms(100), Age: time.Second}},
			Unreachable: []string{"r9"}},
		wantDrops: []string{"r8"},
	}, {
		name: "partition repair adds the nearest unreachable router beyond the target",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: cfg,
			Links:       []Link{{Peer: "r0", RTT: ms(10)}, {Peer: "r1", RTT: ms(20)}, {Peer: "r2", RTT: ms(30)}},
			Unreachable: []string{"r9", "r6", "r7"}},
		wantAdd: []string{"r6"},
		wantWhy: []Why{WhyRepair},
	}, {
		name: "partition repair stops at the maximum",
		in: Input{Self: "me", Coord: at(0), Members: ten, Config: cfg,
			Links:       []Link{{Peer: "r0"}, {Peer: "r1"}, {Peer: "r2"}, {Peer: "r3"}, {Peer: "r4"}},
			Unreachable: []string{"r9"}},
	}, {
		name: "a router never dials a leaf",
		in: Input{Self: "me", Coord: at(0), Config: cfg,
			Members:     []Member{{Name: "l0", Leaf: true, Addr: "l0", Coord: at(1)}, {Name: "r0", Addr: "r0", Coord: at(50)}},
			Unreachable: []string{"l0"}},
		wantAdd: []string{"r0"},
	}, {
		name: "a leaf links to its nearest routers, never to leaves",
		in: Input{Self: "me", Leaf: true, Coord: at(0), Config: Config{Leaf: 2},
			Members: append([]Member{{Name: "l0", Leaf: true, Addr: "l0", Coord: at(1)}, {Name: "l1", Leaf: true, Addr: "l1", Coord: at(2)}}, ten...)},
		wantAdd: []string{"r0", "r1"},
	}, {
		name: "a leaf with its routers adds nothing",
		in: Input{Self: "me", Leaf: true, Coord: at(0), Config: Config{Leaf: 2}, Members: ten,
			Links: []Link{{Peer: "r0", Outbound: true}, {Peer: "r1", Outbound: true}}, Unreachable: []string{"r9"}},
	}, {
		name:    "members without coordinates are ordered by the seeded hash, all distinct",
		in:      Input{Self: "me", Members: []Member{{Name: "a", Addr: "a"}, {Name: "b", Addr: "b"}, {Name: "c", Addr: "c"}}, Config: Config{Target: 5, Adds: 5, Probes: -1}},
		wantAdd: []string{"a", "b", "c"},
	}, {
		name: "members without a link address are not dialled",
		in:   Input{Self: "me", Members: []Member{{Name: "a"}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.in)
			gotAdd := names(got.Add)
			if tt.name == "members without coordinates are ordered by the seeded hash, all distinct" {
				sort.Strings(gotAdd)
			}
			if tt.wantAdd != nil || tt.wantWhy == nil {
				if !slices.Equal(gotAdd, tt.wantAdd) {
					t.Errorf("added %v, want %v", gotAdd, tt.wantAdd)
				}
			}
			if len(got.Why) != len(got.Add) {
				t.Errorf("%d kinds for %d adds", len(got.Why), len(got.Add))
			}
			if tt.wantWhy != nil && !slices.Equal(got.Why, tt.wantWhy) {
				t.Errorf("adds %v are of kinds %v, want %v", gotAdd, got.Why, tt.wantWhy)
			}
			for _, d := range got.Drop {
				if tt.dropWhy != "" && d.Why != tt.dropWhy {
					t.Errorf("drop of %s is of kind %q (%s), want %q", d.Peer, d.Why, d.Reason, tt.dropWhy)
				}
			}
			if d := drops(got.Drop); !slices.Equal(d, tt.wantDrops) {
				t.Errorf("dropped %v, want %v", d, tt.wantDrops)
			}
		})
	}
}

func TestLongLinksDifferPerNode(t *testing.T) {
	var members []Member
	for i := range 50 {
		members = append(members, Member{Name: fmt.Sprintf("n%02d", i), Addr: "x"})
	}
	seen := map[string]bool{}
	for i := range 10 {
		p := Decide(Input{Self: fmt.Sprintf("n%02d", i), Members: members, Config: Config{Target: 1, Long: 0}})
		if len(p.Add) != 1 {
			t.Fatalf("added %v", names(p.Add))
		}
		seen[p.Add[0].Name] = true
	}
	if len(seen) < 5 {
		t.Errorf("10 nodes chose only %d distinct peers among 50 equidistant ones: %v", len(seen), seen)
	}
}

// mesh simulates every node applying Decide in rounds: links are
// symmetric, a dial to a node at its maximum is refused by the drop rule,
// routing reachability is the connected component.
type mesh struct {
	members []Member
	coord   map[string]*coordinate.Coordinate
	links   map[string]map[string]bool // a → b → a dialled
	cfg     Config
	changes int
	// refused[a][b]: b dropped its link with a, so a backs off from b (a
	// real node backs off per address).
	refused map[string]map[string]bool
}

func newMesh(n int, order []int, cfg Config, rng *rand.Rand) *mesh {
	m := &mesh{coord: map[string]*coordinate.Coordinate{}, links: map[string]map[string]bool{}, refused: map[string]map[string]bool{}, cfg: cfg}
	for _, i := range order {
		name := fmt.Sprintf("n%04d", i)
		// Three regions 40 ms apart on a triangle, 1 ms inside.
		c := at(float64(i%3%2)*40 + rng.Float64())
		c.Vec[1] = (float64(i%3/2)*35 + rng.Float64()) / 1000
		if i%3 == 2 {
			c.Vec[0] += 20.0 / 1000
		}
		m.coord[name] = c
		m.members = append(m.members, Member{Name: name, Addr: name, Coord: c})
		m.links[name] = map[string]bool{}
		m.refused[name] = map[string]bool{}
	}
	return m
}

func (m *mesh) rtt(a, b string) time.Duration {
	return m.coord[a].DistanceTo(m.coord[b]) + time.Microsecond
}

func (m *mesh) component(from string) map[string]bool {
	seen := map[string]bool{from: true}
	q := []string{from}
	for len(q) > 0 {
		x := q[0]
		q = q[1:]
		for y := range m.links[x] {
			if !seen[y] {
				seen[y] = true
				q = append(q, y)
			}
		}
	}
	return seen
}

func (m *mesh) round() {
	comp := map[string]int{}
	for i, me := range m.members {
		if _, ok := comp[me.Name]; !ok {
			for x := range m.component(me.Name) {
				comp[x] = i
			}
		}
	}
	for _, me := range m.members {
		var ls []Link
		for p, out := range m.links[me.Name] {
			ls = append(ls, Link{Peer: p, Outbound: out, RTT: m.rtt(me.Name, p)})
		}
		var lost, backoff []string
		for _, o := range m.members {
			if comp[o.Name] != comp[me.Name] {
				lost = append(lost, o.Name)
			}
		}
		for o := range m.refused[me.Name] {
			backoff = append(backoff, o)
		}
		p := Decide(Input{Self: me.Name, Coord: m.coord[me.Name], Members: m.members, Links: ls,
			Unreachable: lost, Unavailable: backoff, Config: m.cfg})
		for _, a := range p.Add {
			m.links[me.Name][a.Name] = true
			m.links[a.Name][me.Name] = false
			m.changes++
		}
		for _, d := range p.Drop {
			delete(m.links[me.Name], d.Peer)
			delete(m.links[d.Peer], me.Name)
			m.refused[d.Peer][me.Name] = true
			m.changes++
		}
	}
}

func TestPlanBuildsConnectedBoundedMesh(t *testing.T) {
	sizes := []int{10, 100}
	if !testing.Short() {
		sizes = append(sizes, 1000)
	}
	for _, n := range sizes {
		for _, random := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/random=%v", n, random), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(n), 7))
				order := make([]int, n)
				for i := range order {
					order[i] = i
				}
				if random {
					rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
				}
				cfg := Config{Target: 4, Max: 8, Long: 1}
				m := newMesh(n, order, cfg, rng)
				rounds := 0
				for ; rounds < 50; rounds++ {
					m.round()
					if len(m.component(m.members[0].Name)) == n {
						break
					}
				}
				if got := len(m.component(m.members[0].Name)); got != n {
					t.Fatalf("after %d rounds the first node reaches %d of %d", rounds, got, n)
				}
				// Settle, then require no more changes (no churn).
				for range 10 {
					m.round()
				}
				before := m.changes
				for range 5 {
					m.round()
				}
				if m.changes != before {
					t.Errorf("links still change after settling: %d changes in 5 rounds", m.changes-before)
				}
				maxDeg, sum := 0, 0
				for _, me := range m.members {
					d := len(m.links[me.Name])
					maxDeg = max(maxDeg, d)
					sum += d
				}
				if maxDeg > cfg.Max {
					t.Errorf("max degree %d above the hard maximum %d", maxDeg, cfg.Max)
				}
				if got := len(m.component(m.members[0].Name)); got != n {
					t.Errorf("settled mesh reaches %d of %d", got, n)
				}
				stretch, diameter := m.pathStats()
				if stretch > 1.3 {
					t.Errorf("mean path stretch %.2f between regions, above 1.3", stretch)
				}
				t.Logf("n=%d connected after %d rounds; max degree %d, mean %.1f; diameter %d hops; mean path stretch %.2f",
					n, rounds+1, maxDeg, float64(sum)/float64(n), diameter, stretch)
			})
		}
	}
}

// pathStats returns the mean stretch of the lowest-latency path over the
// links against the direct underlay latency, over pairs in different
// regions (inside a region every path is a fraction of a millisecond), and
// the diameter in hops seen from those sources.
func (m *mesh) pathStats() (stretch float64, diameter int) {
	var sum float64
	pairs := 0
	for _, src := range m.members[:min(50, len(m.members))] { // 50 sources bound the cost
		// Dijkstra by latency, tracking hop counts by BFS separately.
		dist := map[string]time.Duration{src.Name: 0}
		done := map[string]bool{}
		for {
			cur, best := "", time.Duration(-1)
			for x, d := range dist {
				if !done[x] && (best < 0 || d < best) {
					cur, best = x, d
				}
			}
			if cur == "" {
				break
			}
			done[cur] = true
			for y := range m.links[cur] {
				if d := best + m.rtt(cur, y); !done[y] {
					if old, ok := dist[y]; !ok || d < old {
						dist[y] = d
					}
				}
			}
		}
		hops := map[string]int{src.Name: 0}
		q := []string{src.Name}
		for len(q) > 0 {
			x := q[0]
			q = q[1:]
			for y := range m.links[x] {
				if _, ok := hops[y]; !ok {
					hops[y] = hops[x] + 1
					diameter = max(diameter, hops[y])
					q = append(q, y)
				}
			}
		}
		for _, dst := range m.members {
			direct := m.rtt(src.Name, dst.Name)
			if dst.Name == src.Name || direct < 10*time.Millisecond {
				continue
			}
			sum += float64(dist[dst.Name]) / float64(direct)
			pairs++
		}
	}
	if pairs == 0 {
		return 1, diameter
	}
	return sum / float64(pairs), diameter
}

// coordDistance gives DistanceTo's distance, adjustments and heights
// included.
func TestCoordDistanceIsDistanceTo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		a, b := coordinate.NewCoordinate(coordinate.DefaultConfig()), coordinate.NewCoordinate(coordinate.DefaultConfig())
		for _, c := range []*coordinate.Coordinate{a, b} {
			for i := range c.Vec {
				c.Vec[i] = rng.NormFloat64() * 0.05
			}
			c.Height = rng.Float64() * 0.01
			c.Adjustment = (rng.Float64() - 0.5) * 0.2
		}
		if got, want := coordDistance(a, b), a.DistanceTo(b); got != want {
			t.Fatalf("coordDistance = %v, DistanceTo = %v (%+v, %+v)", got, want, a, b)
		}
	}
}

// TestReplaceableSpread: links made in one burst come up for replacement
// over ReplaceSpread after MinAge, not all at once, and every one by then.
func TestReplaceableSpread(t *testing.T) {
	cfg := Config{MinAge: time.Minute}.withDefaults()
	p := planner{in: Input{Self: "me"}, cfg: cfg, hashes: map[string]uint64{}}
	early, late := 0, 0
	for i := range 100 {
		l := Link{Peer: fmt.Sprintf("r%d", i), Outbound: true}
		l.Age = time.Minute - time.Second
		if p.replaceable(l) {
			t.Fatalf("%s replaceable at %v, below MinAge", l.Peer, l.Age)
		}
		l.Age = time.Minute + ReplaceSpread
		if !p.replaceable(l) {
			t.Fatalf("%s not replaceable at %v", l.Peer, l.Age)
		}
		l.Age = time.Minute + ReplaceSpread/2
		if p.replaceable(l) {
			early++
		} else {
			late++
		}
	}
	if early < 20 || late < 20 {
		t.Errorf("half way through the spread %d of 100 links replaceable, %d not: want both many", early, late)
	}
}
