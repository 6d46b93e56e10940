package topology

import (
	"slices"
	"testing"
	"time"
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
		name: "no coordinates: nothing to rank, none",
		edit: func(in *Input) {
			for i := range in.Members {
				in.Members[i].Coord = nil
			}
		},
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
