package routing

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// The index as the engine uses it: removed entries clear their side
// entry and give their id back, the next new entry takes it; hashes
// collide in long runs. Lookups find exactly the live entries.
func TestOriginIndexIDReuse(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 3))
		var side sideTable
		var free []uint32
		x := newOriginIndex(&side)
		x.seed = r.Uint64() | 1
		want := map[string]*origin{}
		hash := map[string]uint64{}
		names := make([]string, 300)
		for i := range names {
			names[i] = fmt.Sprintf("n%d", i)
			hash[names[i]] = nameHash(names[i])
			if r.IntN(2) == 0 {
				hash[names[i]] = uint64(r.IntN(3))
			}
		}
		for step := range 20000 {
			name := names[r.IntN(len(names))]
			if o, ok := want[name]; ok {
				x.remove(hash[name], o)
				side.release(o.id)
				free = append(free, o.id)
				delete(want, name)
			} else {
				var id uint32
				if n := len(free); n > 0 && r.IntN(4) != 0 {
					id, free = free[n-1], free[:n-1]
				} else {
					id = side.add()
				}
				o := side.place(id, named(name), 4)
				x.insert(hash[name], o)
				want[name] = o
			}
			if step%97 == 0 {
				for _, n := range names {
					if got := x.lookup(hash[n], n); got != want[n] {
						t.Fatalf("seed %d step %d: lookup %q = %p, want %p", seed, step, n, got, want[n])
					}
				}
				seen := 0
				for o := range x.all() {
					if want[side.at(o.id).ref.origin] != o {
						t.Fatalf("seed %d step %d: all yields a stale entry", seed, step)
					}
					seen++
				}
				if seen != len(want) || x.len() != len(want) {
					t.Fatalf("seed %d step %d: %d yielded, len %d, want %d", seed, step, seen, x.len(), len(want))
				}
			}
		}
	}
}

// A slab of table entries is let go once none of its entries is in use,
// and its index serves the next slab; the entries of the other slabs stay
// where they are.
func TestSideTableReleasesEmptySlabs(t *testing.T) {
	var side sideTable
	var os []*origin
	for i := range 2*originSlab + 1 {
		os = append(os, side.place(side.add(), named(fmt.Sprint(i)), originSlab))
	}
	for _, o := range os[:originSlab-1] {
		side.release(o.id)
	}
	if side.slabs[0] == nil {
		t.Fatal("a slab with an entry in use was let go")
	}
	side.release(os[originSlab-1].id)
	if side.slabs[0] != nil || len(side.freeSlabs) != 1 {
		t.Fatalf("an empty slab is kept (%d free)", len(side.freeSlabs))
	}
	for _, o := range os[originSlab:] {
		if got := side.entry(side.at(o.id)); got != o || got.id != o.id {
			t.Fatalf("entry %d moved", o.id)
		}
	}
	// The slab being filled is kept while empty, and let go once full.
	for range originSlab - 1 {
		os = append(os, side.place(side.add(), named("x"), originSlab))
	}
	for _, o := range os[2*originSlab:] {
		side.release(o.id)
	}
	if side.slabs[2] == nil {
		t.Fatal("the slab being filled was let go")
	}
	o := side.place(side.add(), named("y"), originSlab)
	if x := side.at(o.id); x.slab != 2 || side.live[2] != 1 || len(side.freeSlabs) != 1 || side.entry(x) != o {
		t.Fatalf("a full empty slab is kept, or its index not reused (entry in slab %d, %d free)", x.slab, len(side.freeSlabs))
	}
}
