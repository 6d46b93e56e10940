package topology

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkDecide: one policy step of a router at its target among n
// members that routing reaches, each probed, as in a settled mesh, or
// (unprobed) known by their gossiped coordinates only, as most members
// are a minute after a mass join; "untrusted": half of them probed and
// this node's own coordinate's error above TrustError, so that the
// estimates order only the probes (sorted apart).
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{100, 1000} {
		for _, unprobed := range []bool{false, true} {
			benchDecide(b, n, unprobed, false)
		}
		benchDecide(b, n, false, true)
	}
}

func benchDecide(b *testing.B, n int, unprobed, untrusted bool) {
	name := fmt.Sprint(n)
	if unprobed {
		name += "/unprobed"
	}
	if untrusted {
		name += "/untrusted"
	}
	b.Run(name, func(b *testing.B) {
		in := Input{Self: "me", Coord: at(0), Config: Config{Target: 5, Max: 10}}
		if untrusted {
			in.Coord.Error = 2 * TrustError
		}
		for i := range n {
			name := fmt.Sprintf("n%d", i)
			rtt := ms(2 + float64(i%3)*60)
			m := Member{Name: name, Addr: name, Coord: at(float64(i % 100)), RTT: rtt, Route: rtt + ms(1)}
			if unprobed || untrusted && i%2 == 1 {
				m.RTT = 0
			}
			in.Members = append(in.Members, m)
			if i < 8 {
				in.Links = append(in.Links, Link{Peer: name, Outbound: i%2 == 0, RTT: rtt, Age: time.Minute})
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			Decide(in)
		}
	})
}
