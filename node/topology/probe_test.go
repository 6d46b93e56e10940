package topology

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/serf/coordinate"
)

// TestProbe: Plan.Probe names the routers nearest by coordinate whose
// round trip is not measured, within the near neighbours' radius: the
// members a shortcut or replacement could go to once measured.
func TestProbe(t *testing.T) {
	// me at 0, near links to a and b (1 ms); members by coordinate at 2,
	// 3, 4, 5 ms (c, d, e, f), g at 40 ms, h measured, l a leaf.
	base := func() Input {
		mem := func(name string, x float64) Member {
			return Member{Name: name, Addr: name, Coord: at(x)}
		}
		in := Input{Self: "me", Coord: at(0),
			Members: []Member{mem("a", 1), mem("b", 1), mem("c", 2), mem("d", 3), mem("e", 4), mem("f", 5), mem("g", 40), mem("h", 2.5)},
			Links: []Link{
				{Peer: "a", Outbound: true, RTT: ms(1), Age: time.Minute},
				{Peer: "b", RTT: ms(1), Age: time.Minute},
			},
			Config: Config{Target: 2, Max: 10, Long: -1},
		}
		in.Members[7].RTT = ms(2.5) // h: probed already
		l := mem("l", 1.5)
		l.Leaf = true
		in.Members = append(in.Members, l)
		return in
	}
	tests := []struct {
		name string
		edit func(in *Input)
		want []string
	}{{
		name: "the nearest unmeasured routers, linked, measured and leaves left out",
		edit: func(in *Input) {},
		want: []string{"c", "d"},
	}, {
		name: "members being probed are left out",
		edit: func(in *Input) { in.Probing = []string{"c"} },
		want: []string{"d", "e"},
	}, {
		name: "none beyond the radius (2 × 1 ms + 2 ms)",
		edit: func(in *Input) { in.Probing = []string{"c", "d"} },
		want: []string{"e"},
	}, {
		name: "Config.Probes bounds them",
		edit: func(in *Input) { in.Config.Probes = 3 },
		want: []string{"c", "d", "e"},
	}, {
		name: "negative Probes: none",
		edit: func(in *Input) { in.Config.Probes = -1 },
	}, {
		// Its error above TrustError, this node's coordinate ranks no
		// link; the probes it orders measure what links are ranked by.
		name: "own coordinate not trusted: it still orders the probes within the radius",
		edit: func(in *Input) {
			in.Coord.Error = 2 * TrustError
			in.Config.Target = 1 // a, b and h known: not bootstrapping
		},
		want: []string{"c", "d"},
	}, {
		name: "no coordinates and probes asked: no radius to rank by, none",
		edit: func(in *Input) {
			for i := range in.Members {
				in.Members[i].Coord = nil
			}
			in.Config.Target = 1 // a, b and h known: not bootstrapping
		},
	}, {
		name: "no coordinates, three routers of eight known: bootstrapping, BootstrapProbes of the others by the seeded hash",
		edit: func(in *Input) {
			for i := range in.Members {
				in.Members[i].Coord = nil
			}
		},
		want: []string{"e", "c", "g", "f"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base()
			tt.edit(&in)
			got := Decide(in).Probe
			if !slices.Equal(got, tt.want) {
				t.Errorf("Probe = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestBootstrap: a router that has just joined knows no distance; its
// links beyond the first wait for the round trips it has measured, so
// that they go to the nearest of the routers it probed rather than to
// routers drawn at random (in three regions, two of three elsewhere).
func TestBootstrap(t *testing.T) {
	// Twenty routers without coordinates; "near" and "mid" measured
	// once the probes answered.
	base := func() Input {
		in := Input{Self: "me", Config: Config{Target: 4, Max: 10, Long: -1}}
		for i := range 20 {
			name := fmt.Sprintf("r%02d", i)
			in.Members = append(in.Members, Member{Name: name, Addr: name})
		}
		return in
	}
	measured := func(in *Input) {
		in.Members = append(in.Members, Member{Name: "near", Addr: "near", RTT: ms(2)}, Member{Name: "mid", Addr: "mid", RTT: ms(9)})
	}
	probing := func(in *Input, n int) {
		in.Probing = nil
		for i := range n {
			in.Probing = append(in.Probing, fmt.Sprintf("r%02d", i))
		}
	}
	// liar: this node at 0 with one far link, near and mid measured, 4
	// probes asked, and a member whose gossiped coordinate claims it is
	// next to this node; rtt is what the probes measured to it (0: not
	// yet).
	liar := func(rtt time.Duration) func(in *Input) {
		return func(in *Input) {
			in.Coord = at(0)
			in.Members = append(in.Members, Member{Name: "liar", Addr: "liar", Coord: at(0.1), RTT: rtt})
			in.Links = []Link{{Peer: "r19", Outbound: true, RTT: ms(60)}}
			probing(in, 4)
			measured(in)
		}
	}
	tests := []struct {
		name      string
		edit      func(in *Input)
		wantAdd   []string // nil: compared by count only
		wantAdds  int
		wantProbe int
		probe1    string // when set, the first member Plan.Probe lists
	}{{
		name:      "nothing known, no link: one link at once, and probes",
		edit:      func(in *Input) {},
		wantAdds:  1,
		wantProbe: BootstrapProbes,
	}, {
		name: "one link, nothing measured: no link of unknown distance while probes are asked",
		edit: func(in *Input) {
			in.Links = []Link{{Peer: "r19", Outbound: true, RTT: ms(60)}}
			probing(in, 4)
		},
		wantAdds:  0,
		wantProbe: BootstrapProbes,
	}, {
		name: "one link, two routers measured: those two",
		edit: func(in *Input) {
			in.Links = []Link{{Peer: "r19", Outbound: true, RTT: ms(60)}}
			probing(in, 4)
			measured(in)
		},
		wantAdd:   []string{"near", "mid"},
		wantProbe: BootstrapProbes,
	}, {
		// A liar: its gossiped coordinate puts it next to this node, the
		// round trip the probes will measure is far. Only the measured
		// routers are linked while the probes are asked; the liar is
		// probed first (nearest by its estimate) and ranked by what the
		// probe measures.
		name:      "one link, a member's coordinate claims it is next to this node: only the measured routers",
		edit:      liar(0),
		wantAdd:   []string{"near", "mid"},
		wantProbe: BootstrapProbes,
		probe1:    "liar",
	}, {
		name:      "the liar's probe answered far: ranked by its round trip, after the nearer measured ones",
		edit:      liar(ms(70)),
		wantAdd:   []string{"near", "mid"},
		wantProbe: BootstrapProbes,
	}, {
		name: "BootstrapAsk round trips asked: links of unknown distance too",
		edit: func(in *Input) {
			in.Links = []Link{{Peer: "r19", Outbound: true, RTT: ms(60)}}
			probing(in, BootstrapAsk)
		},
		wantAdds:  2,
		wantProbe: 3, // r16-r18: r00-r15 asked, r19 linked
	}, {
		name: "probes off: no bootstrapping, links at once",
		edit: func(in *Input) {
			in.Links = []Link{{Peer: "r19", Outbound: true, RTT: ms(60)}}
			in.Config.Probes = -1
		},
		wantAdds: 2,
	}, {
		name: "2×Target distances known: not bootstrapping, no probes without a radius",
		edit: func(in *Input) {
			for i := range 8 {
				in.Members[i].RTT = ms(float64(30 + i))
			}
			in.Links = []Link{{Peer: "r19", Outbound: true, RTT: ms(60)}}
		},
		wantAdd:   []string{"r00", "r01"},
		wantProbe: 0,
	}, {
		name: "a leaf does not bootstrap",
		edit: func(in *Input) {
			in.Leaf = true
			in.Links = []Link{{Peer: "r19", Outbound: true, RTT: ms(60)}}
		},
		wantAdds: 1,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base()
			tt.edit(&in)
			p := Decide(in)
			got := names(p.Add)
			if tt.wantAdd != nil {
				if !slices.Equal(got, tt.wantAdd) {
					t.Errorf("added %v, want %v", got, tt.wantAdd)
				}
			} else if len(got) != tt.wantAdds {
				t.Errorf("added %v, want %d links", got, tt.wantAdds)
			}
			if len(p.Probe) != tt.wantProbe {
				t.Errorf("probes %v, want %d", p.Probe, tt.wantProbe)
			}
			if tt.probe1 != "" && (len(p.Probe) == 0 || p.Probe[0] != tt.probe1) {
				t.Errorf("probes %v, want %s first", p.Probe, tt.probe1)
			}
			for _, name := range p.Probe {
				if slices.Contains(in.Probing, name) || name == "near" || name == "mid" {
					t.Errorf("probes %s, which is being probed or measured", name)
				}
			}
		})
	}
}

// TestJoinSettled: a router joining a settled mesh starts with its own
// coordinate at the origin and the largest error; every member's
// coordinate is known, so the node knows an estimate to every router. A
// liar gossiping a coordinate at the origin would be the nearest by
// estimate to every such node, and win its near links, while its real
// round trip is far. Until its own coordinate's error is at most
// TrustError, only measured round trips rank the routers.
func TestJoinSettled(t *testing.T) {
	fresh := coordinate.NewCoordinate(coordinate.DefaultConfig()) // the origin, error 1.5
	// This node is really at 40 ms on the line; eight routers of its
	// region at 38-42 ms, twelve of two other regions at −40 and 0-ish
	// ±20 ms, none measured; the liar claims the origin and is 70 ms
	// away; its first link, to r19, is up.
	base := func(own *coordinate.Coordinate) Input {
		in := Input{Self: "me", Coord: own, Config: Config{Target: 4, Max: 10, Long: -1}}
		for i := range 20 {
			x := 38 + float64(i%8)*0.5
			switch {
			case i >= 14:
				x = -40 - float64(i)
			case i >= 8:
				x = 20 + float64(i)
			}
			name := fmt.Sprintf("r%02d", i)
			in.Members = append(in.Members, Member{Name: name, Addr: name, Coord: at(x)})
		}
		in.Members = append(in.Members, Member{Name: "liar", Addr: "liar", Coord: at(0)})
		in.Links = []Link{{Peer: "r19", Outbound: true, RTT: ms(80)}}
		return in
	}
	measured := func(in *Input) {
		in.Members[0].RTT, in.Members[1].RTT = ms(1), ms(2)
	}
	tests := []struct {
		name      string
		own       *coordinate.Coordinate
		edit      func(in *Input)
		wantAdd   []string
		wantProbe int // how many routers Plan.Probe lists
		// asUnknown: Plan.Probe is that of the same node without a
		// coordinate (the seeded hash's order).
		asUnknown bool
	}{{
		// Bootstrapping, the untrusted coordinate does not order the
		// probes either: the hold links the routers measured, and the
		// liar, probed first, would be among the first of them.
		name:      "own coordinate at the origin, nothing measured: the liar is not linked, the probes are those of a node without a coordinate",
		own:       fresh,
		edit:      func(in *Input) {},
		wantProbe: BootstrapProbes,
		asUnknown: true,
	}, {
		name: "own coordinate at the origin, the liar's probe answered far: the measured nearer routers",
		own:  fresh,
		edit: func(in *Input) {
			measured(in)
			in.Members[len(in.Members)-1].RTT = ms(70)
		},
		wantAdd:   []string{"r00", "r01"},
		wantProbe: BootstrapProbes,
	}, {
		name:      "own coordinate at the origin, two routers measured: those two, not the liar",
		own:       fresh,
		edit:      measured,
		wantAdd:   []string{"r00", "r01"},
		wantProbe: BootstrapProbes,
	}, {
		name: "own coordinate moved a fifth of the way, its error still above TrustError: nothing of unmeasured distance",
		own: func() *coordinate.Coordinate {
			c := at(8)
			c.Error = TrustError * 1.5
			return c
		}(),
		edit:      func(in *Input) {},
		wantProbe: BootstrapProbes,
	}, {
		name: "own coordinate settled at its place: the nearest by estimate, not the liar",
		own:  at(40),
		edit: func(in *Input) {},
		// r03 and r05 are both 0.5 ms away: the seeded hash breaks the tie.
		wantAdd:   []string{"r04", "r03"},
		wantProbe: DefaultProbes, // the nearest unmeasured: r04, r03 being dialled
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base(tt.own)
			tt.edit(&in)
			p := Decide(in)
			if got := names(p.Add); !slices.Equal(got, tt.wantAdd) {
				t.Errorf("added %v, want %v", got, tt.wantAdd)
			}
			if len(p.Probe) != tt.wantProbe {
				t.Errorf("probes %v, want %d", p.Probe, tt.wantProbe)
			}
			if tt.asUnknown {
				in.Coord = nil
				if want := Decide(in).Probe; !slices.Equal(p.Probe, want) {
					t.Errorf("probes %v, want %v as without a coordinate", p.Probe, want)
				}
			}
		})
	}
}
