package routing

import (
	"testing"
	"time"
)

// An update is a neighbour's route to itself exactly when it names the
// neighbour: by the neighbour's table entry while it has one, by name
// when the table was full at LinkUp or the entry left the table.
func TestIsSelf(t *testing.T) {
	e, err := New(Config{Self: "a", MaxRoutes: 1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	e.LinkUp(now, "b", 10, false)
	e.LinkUp(now, "c", 10, false) // the table is full: no entry for c
	b, c := e.nbrs["b"], e.nbrs["c"]
	bo := e.origins.get("b")
	if bo == nil || b.selfOrg != bo || c.selfOrg != nil {
		t.Fatalf("entries: b %p (selfOrg %p), c's selfOrg %p", bo, b.selfOrg, c.selfOrg)
	}
	cases := []struct {
		nb   *neighbour
		en   entry
		want bool
	}{
		{b, entry{origin: "b", org: bo}, true},
		{b, entry{origin: "c"}, false},
		{b, entry{origin: "x"}, false},
		{c, entry{origin: "c"}, true},
		{c, entry{origin: "x"}, false},
		{c, entry{origin: "b", org: bo}, false},
	}
	for _, tc := range cases {
		if got := tc.nb.isSelf(&tc.en); got != tc.want {
			t.Errorf("%s.isSelf(%q) = %v, want %v", tc.nb.name, tc.en.origin, got, tc.want)
		}
	}
	// An entry that left the table is not compared: the names are.
	bo.removed = true
	if !b.isSelf(&entry{origin: "b"}) || b.isSelf(&entry{origin: "x", org: bo}) {
		t.Error("with its entry removed, b is not told by name")
	}
}
