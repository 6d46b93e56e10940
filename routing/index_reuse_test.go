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
				*side.at(o.id) = originSide{}
				free = append(free, o.id)
				delete(want, name)
			} else {
				o := &origin{}
				if n := len(free); n > 0 && r.IntN(4) != 0 {
					o.id, free = free[n-1], free[:n-1]
				} else {
					o.id = side.add()
				}
				*side.at(o.id) = originSide{o: o, name: name}
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
					if want[side.at(o.id).name] != o {
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
