package circuit

import (
	"testing"

	"github.com/circuitmesh/circuitmesh/links"
)

// TestDialRecordPathPassesFirstHop: a caller of the circuit package
// asking for the path (FlagRecordPath, as TestDialAcceptAddrsPathAndCounters
// does) writes an open header with Dial/DialEarly; the first node it
// reaches applies CheckSource to it. The header must pass: the source is
// the link's peer at hop 0.
func TestDialRecordPathPassesFirstHop(t *testing.T) {
	p, ctx, s := openFirstHop(t, 1)
	o := basicOpen()
	o.Flags = FlagRecordPath
	c, err := DialEarly(s, o, Addr{Node: o.Source, Service: o.Service})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in, err := p.links[0].accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadOpen(in, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSource(got, o.Source, links.RoleLeaf); err != nil {
		t.Fatalf("the first hop refuses what DialEarly wrote (path %q): %v", got.Path, err)
	}
}
