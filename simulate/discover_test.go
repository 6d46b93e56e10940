package simulate

import (
	"strings"
	"testing"
)

const discover10 = `# Ten nodes in three regions find each other by gossip through n1.
regions eu:n1..n4 us:n5..n7 ap:n8..n10 inside=1ms between=30ms..80ms
discover seed=n1 nodes=n2..n10
wait members timeout=2m
wait 20s
measure
print events n3
`

func TestDiscoverExplore(t *testing.T) {
	for _, be := range []Backend{BackendMem, BackendQUIC} {
		t.Run(string(be), func(t *testing.T) {
			s, err := Parse("discover10.sim", discover10)
			if err != nil {
				t.Fatal(err)
			}
			rep := Test(t, s, Config{Backend: be})
			var b strings.Builder
			rep.WriteTable(&b)
			t.Log(b.String())
		})
	}
}
