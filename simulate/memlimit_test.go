package simulate

import "testing"

func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		nodes int
		want  int64
	}{
		{0, 0}, {300, 0},
		{1000, 1280 << 20},
		{2000, 256<<20 + 4<<30},
	} {
		if got := MemoryLimit(tc.nodes); got != tc.want {
			t.Errorf("MemoryLimit(%d) = %d MiB, want %d MiB", tc.nodes, got>>20, tc.want>>20)
		}
	}
	if got, want := MemoryLimitGossip(1000, 1000), int64(256<<20+5<<30); got != want {
		t.Errorf("MemoryLimitGossip(1000, 1000) = %d MiB, want %d MiB", got>>20, want>>20)
	}
	if got := MemoryLimitGossip(300, 300); got != 0 {
		t.Errorf("MemoryLimitGossip(300, 300) = %d MiB, want none", got>>20)
	}
	if a, b := MemoryLimit(301), MemoryLimit(5000); a <= 256<<20 || b <= a {
		t.Errorf("MemoryLimit(301) = %d MiB, (5000) = %d MiB: want it above the base and growing", a>>20, b>>20)
	}
}

func TestScriptNodes(t *testing.T) {
	s, err := Parse("n.sim", "nodes a b n1..n10\ndiscover seed=s nodes=x1..x5\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Nodes(); got != 18 {
		t.Fatalf("Nodes() = %d, want 18 (a, b, n1..n10, s, x1..x5)", got)
	}
	if got := s.GossipNodes(); got != 6 {
		t.Fatalf("GossipNodes() = %d, want 6 (s, x1..x5)", got)
	}
}
