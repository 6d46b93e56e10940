package topology

import (
	"strings"
	"testing"
)

func TestAdmit(t *testing.T) {
	cfg := Config{Target: 2, Max: 3, StaticIn: 1}
	in := func(peer string) Link { return Link{Peer: peer} }
	claim := func(peer string) Link { return Link{Peer: peer, Claimed: true} }
	repair := func(peer string) Link { return Link{Peer: peer, Repair: true} }
	alt := func(peer string, n int) Link { return Link{Peer: peer, Alternates: n} }
	for _, tc := range []struct {
		name    string
		links   []Link
		pending []string
		l       Link
		ok      bool
		evict   string
		slots   int
		reason  string
	}{
		{"empty", nil, nil, in("x"), true, "", 3, ""},
		{"below max", []Link{in("a"), in("b")}, nil, in("x"), true, "", 1, ""},
		{"at max", []Link{in("a"), in("b"), in("c")}, nil, in("x"), false, "", 0, "at its link maximum of 3 links"},
		{"dials hold slots", []Link{in("a")}, []string{"b", "c"}, in("x"), false, "", 0, "at its link maximum"},
		{"a dial and its link count once", []Link{in("a"), in("b")}, []string{"a", "b"}, in("x"), true, "", 1, ""},
		{"crossing dial takes the dial's slot", []Link{in("a"), in("b")}, []string{"x"}, in("x"), true, "", 0, ""},
		{"replacing a link", []Link{in("a"), in("b"), in("x")}, nil, in("x"), true, "", 0, ""},
		{"static links are on top", []Link{in("a"), in("b"), in("c"), {Peer: "s", Static: true}}, nil, Link{Peer: "t", Static: true}, true, "", 0, ""},
		{"first claim is on top", []Link{in("a"), in("b"), in("c")}, nil, claim("x"), true, "", 0, ""},
		{"claims beyond StaticIn count", []Link{in("a"), in("b"), claim("c"), claim("d")}, nil, claim("x"), false, "", 0,
			"at its link maximum of 3 links, and 1 links static for their dialler already kept on top"},
		{"claim beyond StaticIn below max", []Link{in("a"), claim("c")}, nil, claim("x"), true, "", 2, ""},

		// At the maximum a repair link takes the place of a redundant
		// idle link; the degree stays at Max.
		{"repair below max evicts nothing", []Link{alt("a", 2), in("b")}, nil, repair("x"), true, "", 1, ""},
		{"repair at max evicts the most redundant", []Link{alt("a", 1), alt("b", 3), alt("c", 2)}, nil, repair("x"), true, "b", 0, ""},
		{"repair at max: no redundant link", []Link{in("a"), in("b"), in("c")}, nil, repair("x"), false, "", 0, "at its link maximum of 3 links"},
		{"repair never evicts a link carrying circuits", []Link{{Peer: "a", Alternates: 2, Streams: 1}, in("b"), in("c")}, nil, repair("x"), false, "", 0, "at its link maximum"},
		{"repair never evicts a static link", []Link{{Peer: "s", Static: true, Alternates: 2}, in("a"), in("b"), in("c")}, nil, repair("x"), false, "", 0, "at its link maximum"},
		{"repair never evicts an honoured claim", []Link{{Peer: "h", Claimed: true, Alternates: 2}, in("a"), in("b"), in("c")}, nil, repair("x"), false, "", 0, "at its link maximum"},
		{"repair never evicts a peer being dialled", []Link{alt("a", 2), in("b")}, []string{"a", "c"}, repair("x"), false, "", 0, "at its link maximum"},
		{"repair evicts incoming before outgoing", []Link{{Peer: "a", Alternates: 1, Outbound: true}, alt("b", 1), in("c")}, nil, repair("x"), true, "b", 0, ""},
		{"repair evicts the farthest", []Link{{Peer: "a", Alternates: 1, RTT: 5}, {Peer: "b", Alternates: 1, RTT: 9}, in("c")}, nil, repair("x"), true, "b", 0, ""},
		{"a claim that is also repair may evict", []Link{{Peer: "h", Claimed: true}, alt("a", 1), in("b"), in("c")}, nil, Link{Peer: "x", Claimed: true, Repair: true}, true, "a", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := Admit(cfg, tc.links, tc.pending, tc.l)
			if a.OK != tc.ok || a.Evict != tc.evict || !strings.HasPrefix(a.Reason, tc.reason) || (!a.OK && !strings.HasPrefix(a.Reason, AtMaximum)) {
				t.Fatalf("Admit = %+v, want ok %v evict %q reason %q", a, tc.ok, tc.evict, tc.reason)
			}
			if s := Slots(cfg, tc.links, tc.pending); s != tc.slots {
				t.Fatalf("Slots = %d, want %d", s, tc.slots)
			}
		})
	}
}

// A node at its maximum that sees a member routing cannot reach gives up
// a redundant idle link so that it can dial the member; without such a
// link, or with the member unavailable, it keeps its links.
func TestPlanMakesRoomForRepair(t *testing.T) {
	cfg := Config{Target: 2, Max: 3}
	members := []Member{{Name: "a", Addr: "a:1"}, {Name: "b", Addr: "b:1"}, {Name: "c", Addr: "c:1"}, {Name: "x", Addr: "x:1", Vouched: true}}
	full := []Link{{Peer: "a", Alternates: 1, Age: DefaultMinAge}, {Peer: "b", Age: DefaultMinAge}, {Peer: "c", Age: DefaultMinAge}}
	p := Decide(Input{Self: "s", Members: members, Links: full, Unreachable: []string{"x"}, Config: cfg})
	if len(p.Add) != 0 || len(p.Drop) != 1 || p.Drop[0].Peer != "a" || p.Drop[0].Why != WhyRoom {
		t.Fatalf("plan %+v: want only a dropped for room", p)
	}
	// Next call, with room: the repair link.
	p = Decide(Input{Self: "s", Members: members, Links: full[1:], Unreachable: []string{"x"}, Config: cfg})
	if len(p.Add) != 1 || p.Add[0].Name != "x" || p.Why[0] != WhyRepair || len(p.Drop) != 0 {
		t.Fatalf("plan %+v: want x added for repair", p)
	}
	for _, tc := range []struct {
		name string
		in   Input
	}{
		{"no redundant link", Input{Links: []Link{{Peer: "a"}, {Peer: "b"}, {Peer: "c"}}, Unreachable: []string{"x"}}},
		{"member unavailable", Input{Links: full, Unreachable: []string{"x"}, Unavailable: []string{"x"}}},
		{"everyone reachable", Input{Links: full}},
		{"room rate-limited", Input{Links: full, Unreachable: []string{"x"}, NoRoom: true}},
	} {
		in := tc.in
		in.Self, in.Members, in.Config = "s", members, cfg
		if p := Decide(in); len(p.Drop) != 0 || len(p.Add) != 0 {
			t.Errorf("%s: plan %+v, want nothing", tc.name, p)
		}
	}
}

// A lost member nobody vouched for (routing never reached it: a holder of
// the gossip key may have invented it, or a certificate holder linked
// elsewhere may never speak routing) gets no room unless the caller allows
// it this once, and then only with another such member lost: two full
// groups whose gossip merged, not one member that links by its own dials.
func TestPlanMakesNoRoomForUnvouchedFakeMember(t *testing.T) {
	cfg := Config{Target: 2, Max: 3}
	members := []Member{{Name: "a", Addr: "a:1"}, {Name: "b", Addr: "b:1"}, {Name: "c", Addr: "c:1"}, {Name: "fake", Addr: "f:1"}, {Name: "fake2", Addr: "f:2"}}
	full := []Link{{Peer: "a", Alternates: 1, Age: DefaultMinAge}, {Peer: "b", Age: DefaultMinAge}, {Peer: "c", Age: DefaultMinAge}}
	if p := Decide(Input{Self: "s", Members: members, Links: full, Unreachable: []string{"fake", "fake2"}, Config: cfg}); len(p.Drop) != 0 || len(p.Add) != 0 {
		t.Fatalf("plan %+v: a link given up for a member nobody vouched for", p)
	}
	if p := Decide(Input{Self: "s", Members: members, Links: full, Unreachable: []string{"fake"}, UnvouchedRoom: true, Config: cfg}); len(p.Drop) != 0 || len(p.Add) != 0 {
		t.Fatalf("plan %+v: a link given up for a lone member nobody vouched for", p)
	}
	if p := Decide(Input{Self: "s", Members: members, Links: full, Unreachable: []string{"fake", "fake2"}, UnvouchedRoom: true, Unavailable: []string{"fake2"}, Config: cfg}); len(p.Drop) != 0 || len(p.Add) != 0 {
		t.Fatalf("plan %+v: a link given up for a lone member nobody vouched for, another one unavailable", p)
	}
	p := Decide(Input{Self: "s", Members: members, Links: full, Unreachable: []string{"fake", "fake2"}, UnvouchedRoom: true, Config: cfg})
	if len(p.Drop) != 1 || p.Drop[0].Why != WhyRoom {
		t.Fatalf("plan %+v: want one link given up when unvouched room is allowed for two lost members", p)
	}
}
