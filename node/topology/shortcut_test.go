package topology

import (
	"slices"
	"testing"
	"time"
)

// region is a node "me" at its target degree of 3 (Max 10) inside a region
// where every member is 2 ms away: near links to a, b, c, and members d, e,
// f that routing reaches over longer routes. Every link is a minute old.
func region() Input {
	mem := func(name string, rtt, route time.Duration) Member {
		return Member{Name: name, Addr: name, Coord: at(2), RTT: rtt, Route: route}
	}
	return Input{Self: "me", Coord: at(0),
		Members: []Member{
			mem("a", ms(2), ms(2)), mem("b", ms(2), ms(2)), mem("c", ms(2), ms(2)),
			mem("d", ms(2), ms(4)), // two hops: ratio 2
			mem("e", ms(2), ms(6)), // three hops: ratio 3
			mem("f", ms(2), ms(3)), // ratio 1.5: below Stretch
		},
		Links: []Link{
			{Peer: "a", Outbound: true, RTT: ms(2), Age: time.Minute},
			{Peer: "b", Outbound: true, RTT: ms(2), Age: time.Minute},
			{Peer: "c", RTT: ms(2), Age: time.Minute},
		},
		Config: Config{Target: 3, Max: 10, Long: -1, Adds: 10},
	}
}

func TestShortcuts(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(in *Input)
		wantAdd []string
		wantWhy []Why
		drops   []string
	}{{
		name:    "the member whose route is longest against its RTT gets a shortcut, one per call",
		edit:    func(in *Input) {},
		wantAdd: []string{"e"}, wantWhy: []Why{WhyShortcut},
	}, {
		name: "a route at 1.5 times the RTT gets none",
		edit: func(in *Input) {
			in.Members = slices.DeleteFunc(in.Members, func(m Member) bool { return m.Name == "d" || m.Name == "e" })
		},
	}, {
		name: "a route Stretch times longer but less than Gain longer gets none",
		edit: func(in *Input) {
			for i := range in.Members {
				in.Members[i].RTT /= 10 // 0.2 ms; routes 0.4 and 0.6 ms
				in.Members[i].Route /= 10
			}
			for i := range in.Links {
				in.Links[i].RTT /= 10
			}
		},
	}, {
		name: "none while a member has no route",
		edit: func(in *Input) { in.Members[5].Route = 0 },
	}, {
		name: "none while gossip shows members routing reached before and does not reach now: a repair link instead",
		edit: func(in *Input) {
			in.Members[5].Vouched, in.Members[5].Route = true, 0
			in.Unreachable = []string{"f"}
		},
		wantAdd: []string{"f"}, wantWhy: []Why{WhyRepair},
	}, {
		// A member no route nor link ever reached (a router whose link
		// port a firewall drops) is no partition: it gets its repair
		// dial, and the shortcut goes on beside it.
		name: "a lost member routing never reached: a repair link and the shortcut",
		edit: func(in *Input) {
			in.Members[5].Route = 0
			in.Unreachable = []string{"f"}
		},
		wantAdd: []string{"f", "e"}, wantWhy: []Why{WhyRepair, WhyShortcut},
	}, {
		name: "none from a leaf",
		edit: func(in *Input) { in.Leaf, in.Config.Leaf = true, 3 },
	}, {
		name: "none at Max−1 links: one slot stays free for a new member",
		edit: func(in *Input) { in.Config.Max = 4 },
	}, {
		name:    "one below Max−1 links",
		edit:    func(in *Input) { in.Config.Max = 5 },
		wantAdd: []string{"e"},
	}, {
		name: "none with shortcuts turned off",
		edit: func(in *Input) { in.Config.Stretch = -1 },
	}, {
		name: "none to a member not measured by the probes yet",
		edit: func(in *Input) {
			in.Members[3].RTT, in.Members[4].RTT = 0, 0
		},
	}, {
		name: "a member beyond the near neighbours' reach gets none",
		edit: func(in *Input) {
			// Radius: Replace × 2 ms + Slack = 6 ms.
			in.Members[4].RTT, in.Members[4].Route = ms(7), ms(30)
		},
		wantAdd: []string{"d"},
	}, {
		name:    "a member being dialled is skipped for the next",
		edit:    func(in *Input) { in.Unavailable = []string{"e"} },
		wantAdd: []string{"d"},
	}, {
		name: "below the target the policy fills up instead",
		edit: func(in *Input) { in.Links = in.Links[:2] },
		// Nearest first: a..f are all 2 ms away, the hash decides; the
		// add is a target link, not a shortcut.
		wantWhy: []Why{WhyTarget},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := region()
			tt.edit(&in)
			got := Decide(in)
			if tt.wantAdd != nil || tt.wantWhy == nil {
				if g := names(got.Add); !slices.Equal(g, tt.wantAdd) {
					t.Errorf("added %v (%v), want %v", g, got.Why, tt.wantAdd)
				}
			}
			if tt.wantWhy != nil && !slices.Equal(got.Why, tt.wantWhy) {
				t.Errorf("adds %v are of kinds %v, want %v", names(got.Add), got.Why, tt.wantWhy)
			}
			if d := drops(got.Drop); !slices.Equal(d, tt.drops) {
				t.Errorf("dropped %v, want %v", d, tt.drops)
			}
		})
	}
}

// TestShortcutCoincidesWithReplacement: when the member a shortcut would
// go to is added in the same call for another reason, the shortcut goes to
// the next member rather than being lost for that call.
func TestShortcutCoincidesWithReplacement(t *testing.T) {
	in := region()
	// An old outgoing link to a far member x (unwanted), and e (a wanted
	// near neighbour, 2 ms) clearly closer: e replaces x, and e is also
	// the member with the longest route.
	in.Members = append(in.Members, Member{Name: "x", Addr: "x", RTT: ms(40), Route: ms(40)})
	in.Links[2] = Link{Peer: "x", Outbound: true, RTT: ms(40), Age: time.Minute}
	in.Members = slices.DeleteFunc(in.Members, func(m Member) bool { return m.Name == "c" })
	got := Decide(in)
	want := []string{"e", "d"}
	if g := names(got.Add); !slices.Equal(g, want) || !slices.Equal(got.Why, []Why{WhyReplace, WhyShortcut}) {
		t.Errorf("added %v (%v), want %v (replace, shortcut)", g, got.Why, want)
	}
}

// TestShortcutKeptWhileNearby: a closer neighbour does not replace a
// shortcut link while its RTT stays within the near neighbours' reach; a
// shortcut link that turned out far is replaced like any other link.
func TestShortcutKeptWhileNearby(t *testing.T) {
	for _, tt := range []struct {
		rtt  time.Duration
		drop []string
	}{
		{rtt: ms(5)},                       // within Replace × 3 ms + Slack = 8 ms: kept
		{rtt: ms(50), drop: []string{"s"}}, // far: a and b are clearly closer
	} {
		// Near neighbours a, b (1 ms) and c (3 ms); the others 4 ms.
		in := region()
		for i := range in.Members {
			in.Members[i].RTT = ms(4)
		}
		in.Links[0].RTT, in.Links[1].RTT, in.Links[2].RTT = ms(1), ms(1), ms(3)
		in.Members = append(in.Members, Member{Name: "s", Addr: "s", RTT: tt.rtt, Route: tt.rtt})
		in.Links = append(in.Links, Link{Peer: "s", Outbound: true, Shortcut: true, RTT: tt.rtt, Age: time.Minute, Alternates: 1})
		in.Config.Replace, in.Config.Slack = 2, 2*time.Millisecond
		in.Config.Stretch = -1
		got := Decide(in)
		if d := drops(got.Drop); !slices.Equal(d, tt.drop) {
			t.Errorf("shortcut link of RTT %v: dropped %v (added %v), want %v", tt.rtt, d, names(got.Add), tt.drop)
		}
		// The same link, not a shortcut, is replaced either way (a and b
		// at 1 ms are clearly closer than 5 ms too).
		in.Links[len(in.Links)-1].Shortcut = false
		if d := drops(Decide(in).Drop); !slices.Equal(d, []string{"s"}) {
			t.Errorf("plain link of RTT %v: dropped %v, want [s]", tt.rtt, d)
		}
	}
}

// TestShortcutNotAttractedByFakedCoordinates: a member that reports a
// coordinate on this node's own (its estimate would be about 0) and one
// whose probe answer came impossibly fast do not win the shortcut over an
// honest member whose route is genuinely the longest.
func TestShortcutNotAttractedByFakedCoordinates(t *testing.T) {
	in := region()
	in.Members = append(in.Members,
		// Coordinate on ours, not probed yet: its estimate would be ~0,
		// so any route would look infinitely stretched.
		Member{Name: "fake", Addr: "fake", Coord: at(0), Route: ms(5)},
		// Coordinate on ours and a probe RTT far below any link's (an
		// ack sent before the probe could arrive): floored at the nearest
		// link's RTT, its ratio is 5/2, below e's 6/2.
		Member{Name: "fast", Addr: "fast", Coord: at(0), RTT: ms(0.01), Route: ms(5)},
	)
	got := Decide(in)
	if g := names(got.Add); !slices.Equal(g, []string{"e"}) {
		t.Errorf("added %v (%v), want [e]: a faked coordinate or probe attracted the shortcut", g, got.Why)
	}
}
