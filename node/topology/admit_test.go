package topology

import (
	"strings"
	"testing"
)

func TestAdmit(t *testing.T) {
	cfg := Config{Target: 2, Max: 3, StaticIn: 1}
	in := func(peer string) Link { return Link{Peer: peer} }
	claim := func(peer string) Link { return Link{Peer: peer, Claimed: true} }
	for _, tc := range []struct {
		name    string
		links   []Link
		pending []string
		l       Link
		ok      bool
		slots   int
		reason  string
	}{
		{"empty", nil, nil, in("x"), true, 3, ""},
		{"below max", []Link{in("a"), in("b")}, nil, in("x"), true, 1, ""},
		{"at max", []Link{in("a"), in("b"), in("c")}, nil, in("x"), false, 0, "at its link maximum of 3 links"},
		{"dials hold slots", []Link{in("a")}, []string{"b", "c"}, in("x"), false, 0, "at its link maximum"},
		{"a dial and its link count once", []Link{in("a"), in("b")}, []string{"a", "b"}, in("x"), true, 1, ""},
		{"crossing dial takes the dial's slot", []Link{in("a"), in("b")}, []string{"x"}, in("x"), true, 0, ""},
		{"replacing a link", []Link{in("a"), in("b"), in("x")}, nil, in("x"), true, 0, ""},
		{"static links are on top", []Link{in("a"), in("b"), in("c"), {Peer: "s", Static: true}}, nil, Link{Peer: "t", Static: true}, true, 0, ""},
		{"first claim is on top", []Link{in("a"), in("b"), in("c")}, nil, claim("x"), true, 0, ""},
		{"claims beyond StaticIn count", []Link{in("a"), in("b"), claim("c"), claim("d")}, nil, claim("x"), false, 0,
			"at its link maximum of 3 links, and 1 links static for their dialler already kept on top"},
		{"claim beyond StaticIn below max", []Link{in("a"), claim("c")}, nil, claim("x"), true, 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason := Admit(cfg, tc.links, tc.pending, tc.l)
			if ok != tc.ok || !strings.HasPrefix(reason, tc.reason) || (!ok && !strings.HasPrefix(reason, AtMaximum)) {
				t.Fatalf("Admit = %v %q, want %v %q", ok, reason, tc.ok, tc.reason)
			}
			if s := Slots(cfg, tc.links, tc.pending); s != tc.slots {
				t.Fatalf("Slots = %d, want %d", s, tc.slots)
			}
		})
	}
}
