package routing

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// The name index finds exactly the entries inserted and not removed, through
// growth, removals that shift runs back, and names whose hashes collide.
func TestOriginIndexMatchesMap(t *testing.T) {
	for seed := range uint64(20) {
		testOriginIndex(t, seed)
	}
}

func testOriginIndex(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 2))
	var side sideTable
	x := newOriginIndex(&side)
	x.seed = r.Uint64() | 1
	want := map[string]*origin{}
	hash := map[*origin]uint64{}
	names := make([]string, 100)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i)
	}
	mk := func(name string) *origin {
		o := side.place(side.add(), named(name), 4)
		hash[o] = nameHash(name)
		if r.IntN(2) == 0 {
			// Long runs of equal hashes, some of which wrap around
			// the end of the slots.
			hash[o] = uint64(r.IntN(4))
		}
		return o
	}
	for step := range 5000 {
		name := names[r.IntN(len(names))]
		if o, ok := want[name]; ok && r.IntN(2) == 0 {
			x.remove(hash[o], o)
			delete(want, name)
		} else if !ok {
			o := mk(name)
			x.insert(hash[o], o)
			want[name] = o
		}
		if x.len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", step, x.len(), len(want))
		}
		if step%7 == 0 {
			n := 0
			for o := range x.all() {
				if name := side.at(o.id).ref.origin; want[name] != o {
					t.Fatalf("step %d: index yields %q, not in the table", step, name)
				}
				n++
			}
			for _, name := range names {
				h := nameHash(name)
				if o := want[name]; o != nil {
					h = hash[o]
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

// Names of every length, pairs of them differing only in a middle byte,
// inserted under the index's hash of the string, are found by get and by
// getBytes (which hashes the bytes: both must agree at every length, the
// 4- to 8-byte words as the others), and a longer name is not.
func TestOriginIndexHashEveryLength(t *testing.T) {
	var side sideTable
	x := newOriginIndex(&side)
	var names []string
	for n := 1; n <= MaxNameLen; n++ {
		for _, mid := range []byte("ab") {
			b := make([]byte, n)
			for i := range b {
				b[i] = 'x'
			}
			b[n/2] = mid
			names = append(names, string(b))
		}
	}
	want := map[string]*origin{}
	for _, name := range names {
		if want[name] != nil {
			continue // n = 1..2: the same names
		}
		o := side.place(side.add(), named(name), 4)
		x.insert(x.hash(name), o)
		want[name] = o
	}
	for _, name := range names {
		if got := x.get(name); got != want[name] {
			t.Fatalf("get(%d bytes %q) = %p, want %p", len(name), name, got, want[name])
		}
		if s := x.getBytes([]byte(name)); s == nil || side.entry(s) != want[name] {
			t.Fatalf("getBytes(%d bytes) misses", len(name))
		}
		if x.get(name+"y") != nil {
			t.Fatalf("get of %d bytes finds a name not inserted", len(name)+1)
		}
	}
}
