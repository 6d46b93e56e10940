package topology

import (
	"fmt"
	"hash/fnv"
	"reflect"
	"testing"

	"github.com/circuitmesh/circuitmesh/internal/splitmix"
)

// TestDecideReusesNoState: Decide keeps its tables between calls
// (scratch); a plan must not depend on what an earlier call, with other
// members, left there. A mesh's members nearer than any of another
// mesh's must not appear in the other's plan, which is the same as when
// it was decided first.
func TestDecideReusesNoState(t *testing.T) {
	mesh := func(prefix string, from float64, untrusted bool) Input {
		in := Input{Self: prefix + "-self", Coord: at(0), Config: Config{Target: 5, Max: 10, Probes: 3}}
		if untrusted {
			in.Coord.Error = 2 * TrustError // estimates order the probes only
		}
		for i := range 20 {
			name := fmt.Sprintf("%s%d", prefix, i)
			m := Member{Name: name, Addr: name, Coord: at(from + float64(i))}
			if i%2 == 0 {
				m.RTT = ms(from + float64(i))
			}
			in.Members = append(in.Members, m)
		}
		return in
	}
	for _, untrusted := range []bool{false, true} {
		far, near := mesh("far", 100, untrusted), mesh("near", 1, untrusted)
		first := Decide(far)
		if len(first.Add) == 0 {
			t.Fatalf("untrusted %v: no link added among %d members", untrusted, len(far.Members))
		}
		for range 3 {
			Decide(near)
			again := Decide(far)
			for _, m := range again.Add {
				if m.Name[:3] != "far" {
					t.Fatalf("untrusted %v: plan adds %s, a member of an earlier call: %v", untrusted, m.Name, names(again.Add))
				}
			}
			for _, name := range again.Probe {
				if name[:3] != "far" {
					t.Fatalf("untrusted %v: plan probes %s, a member of an earlier call: %v", untrusted, name, again.Probe)
				}
			}
			if !reflect.DeepEqual(first, again) {
				t.Fatalf("untrusted %v: plan after another call\n%+v\ndiffers from the first\n%+v", untrusted, again, first)
			}
		}
	}
}

// TestHashIsFNV1a: the seeded hash that orders long links is FNV-1a
// (hash/fnv) of the seed's 8 bytes, this node's name, a zero byte and the
// member's name, mixed by SplitMix64: the same ranks as before it was
// computed without hash/fnv, so every node picks the same long links.
func TestHashIsFNV1a(t *testing.T) {
	for _, seed := range []int64{0, 1, -1, 1 << 40, -7 << 50} {
		for _, self := range []string{"", "n1", "é-node"} {
			p := planner{in: Input{Self: self}, cfg: Config{Seed: seed}, hashes: map[string]uint64{}}
			for _, name := range []string{"", "n0999", "n1000", "ü"} {
				h := fnv.New64a()
				var s [8]byte
				for i := range s {
					s[i] = byte(seed >> (8 * i))
				}
				h.Write(s[:])
				h.Write([]byte(self))
				h.Write([]byte{0})
				h.Write([]byte(name))
				if got, want := p.hash(name), splitmix.Mix(h.Sum64()); got != want {
					t.Fatalf("seed %d, self %q: hash(%q) = %x, want %x", seed, self, name, got, want)
				}
			}
		}
	}
}
