package routing

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// The name index finds exactly the entries inserted and not removed, through
// growth, removals that shift runs back, and names whose hashes collide.
func TestOriginIndexMatchesMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := newOriginIndex()
	want := map[string]*origin{}
	names := make([]string, 300)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i)
	}
	mk := func(name string) *origin {
		o := &origin{name: name, hash: nameHash(name)}
		if r.IntN(4) == 0 {
			o.hash = 42 // collides with every other such name
		}
		return o
	}
	for step := range 20000 {
		name := names[r.IntN(len(names))]
		if o, ok := want[name]; ok && r.IntN(2) == 0 {
			x.remove(o)
			delete(want, name)
		} else if !ok {
			o := mk(name)
			x.insert(o)
			want[name] = o
		}
		if x.len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", step, x.len(), len(want))
		}
		if step%97 == 0 {
			n := 0
			for o := range x.all() {
				if want[o.name] != o {
					t.Fatalf("step %d: index yields %q, not in the table", step, o.name)
				}
				n++
			}
			for _, name := range names {
				h := nameHash(name)
				if o := want[name]; o != nil {
					h = o.hash
				}
				if got := x.lookup(h, name); got != want[name] {
					t.Fatalf("step %d: lookup of %q gives %v, want %v", step, name, got, want[name])
				}
			}
			if n != len(want) {
				t.Fatalf("step %d: index yields %d entries, want %d", step, n, len(want))
			}
		}
	}
}
