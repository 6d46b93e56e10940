package simulate

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseSteps(t *testing.T) {
	s, err := Parse("t", `
# comment line
nodes a b c n1..n3   # trailing comment
link a-b b-c latency=5ms loss=0.01
set a-b loss=0.5
random edges=6 seed=3
wait 1500ms
wait converged timeout=2s
expect route a c hops=2 via=b within=0s
expect unreachable a c
partition { a , b } {c}
transfer a c 4MiB within=9s
print routes a
heal
`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[Op]Step{}
	var lines []int
	for _, st := range s.Steps {
		got[st.Op] = st
		lines = append(lines, st.Line)
	}
	if want := []int{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}; !reflect.DeepEqual(lines, want) {
		t.Errorf("lines %v, want %v", lines, want)
	}
	check := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("nodes", got[OpNodes].Nodes, []string{"a", "b", "c", "n1", "n2", "n3"})
	check("link edges", got[OpLink].Edges, [][2]string{{"a", "b"}, {"b", "c"}})
	check("link params", got[OpLink].Params, LinkParams{Latency: 5 * time.Millisecond, Loss: 0.01})
	check("set", []bool{got[OpSet].SetLatency, got[OpSet].SetLoss}, []bool{false, true})
	check("random edges", len(got[OpRandom].Edges), 6)
	check("wait", got[OpWait].Duration, 1500*time.Millisecond)
	check("wait converged", got[OpWaitConverged].Duration, 2*time.Second)
	r := got[OpExpectRoute]
	check("expect route", []any{r.Nodes, r.Hops, r.Via, r.Duration}, []any{[]string{"a", "c"}, 2, "b", time.Duration(0)})
	check("expect unreachable within", got[OpExpectUnreachable].Duration, DefaultWithin)
	check("partition", got[OpPartition].Sets, [2][]string{{"a", "b"}, {"c"}})
	check("transfer", []any{got[OpTransfer].Size, got[OpTransfer].Duration}, []any{int64(4 << 20), 9 * time.Second})
	check("print", []any{got[OpPrint].What, got[OpPrint].Nodes}, []any{"routes", []string{"a"}})
	check("heal", len(got[OpHeal].Edges), 0)
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		src  string
		line int
		msg  string
	}{
		{"nodes a\nfly a", 2, "unknown command"},
		{"nodes a b\nlink a-c", 2, `unknown node "c"`},
		{"nodes a b\nlink a-a", 2, "itself"},
		{"nodes a b\ncut a-b", 2, "no such link"},
		{"nodes a b\nlink a-b latency=-1s", 2, "latency=-1s"},
		{"nodes a b\nlink a-b loss=2", 2, "from 0 to 1"},
		{"nodes a b\nlink a-b hops=2", 2, "does not take hops="},
		{"nodes a b\nlink a-b loss=0.1 loss=0.2", 2, "twice"},
		{"nodes a b\nlink a-b latency=1ms b-a", 2, "options last"},
		{"nodes a a", 1, "declared twice"},
		{"nodes A", 1, `bad node name "A": want [a-z0-9][a-z0-9._]*, at most`},
		{"nodes a-b", 1, "'-' separates the ends of a link in scenarios (want [a-z0-9][a-z0-9._]*)"},
		{"nodes n1..n6000", 1, "more than 5000"},
		{"nodes n5..n1", 1, "increasing"},
		{"nodes a b\n\n\nexpect route a b hops=0", 4, "hop count"},
		{"nodes a b\nexpect route a a", 2, "to itself"},
		{"nodes a b\nexpect maybe a b", 2, "want expect"},
		{"nodes a b\ntransfer a b 4XB", 2, "bad size"},
		{"nodes a b\ntransfer a b 2GiB", 2, "bad size"},
		{"nodes a b\npartition {a} {a}", 2, "both sides"},
		{"nodes a b\npartition {a} b", 2, "want partition"},
		{"nodes a b c\nrandom edges=1", 2, "2 to 3 links"},
		{"nodes a b\nwait forever", 2, "duration"},
		{"nodes a b\nwait converged within=1s", 2, "does not take within="},
		{"nodes a b\nset a-b", 2, "no such link"},
		{"nodes a b\nlink a-b\nset a-b", 3, "latency= or loss="},
		{"nodes a b\nprint stuff a", 2, "print routes|links|events"},
		{"nodes a b\nisolate a b", 2, "one node"},
		{"nodes a b\nlink a-b\nunlink a-b\nheal a-b", 4, "no such link"},
		{"nodes a b\nkill a a", 2, "a named twice"},
		{"nodes a b\nkill a\nkill b a", 3, "a is down already (killed on line 2)"},
		{"nodes a b\nrestart a", 2, "a is running (kill it first)"},
		{"nodes a b\nkill a\nrestart a\n\nrestart a", 5, "a is running (kill it first)"},
		{"nodes a b\nkill a b\nrestart b b", 3, "b named twice"},
		{"nodes a b\nkill b\nlink a-b", 3, "b is down (killed on line 2; restart it first)"},
		{"nodes a b c\nkill c\nrandom edges=2", 3, "c is down"},
		{"nodes a b\nkill a\ntransfer a b 1KiB", 3, "a is down"},
		{"", 1, "no command"},
		{"# only a comment\n\n", 1, "no command"},
	} {
		_, err := Parse("s.sim", tc.src)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%q: error %v, want a *ParseError", tc.src, err)
			continue
		}
		if pe.Line != tc.line || !strings.Contains(pe.Msg, tc.msg) || !strings.HasPrefix(err.Error(), "s.sim:") {
			t.Errorf("%q: error %q at line %d, want line %d containing %q", tc.src, err, pe.Line, tc.line, tc.msg)
		}
	}
}

// A node restarted is up again for link, random and transfer.
func TestParseRestartedNodeIsUp(t *testing.T) {
	if _, err := Parse("up.sim", "nodes a b c\nkill b\nrestart b\nrandom edges=2 seed=3\nlink a-b\ntransfer b a 1KiB\n"); err != nil {
		t.Fatal(err)
	}
}

// A script saved with a byte order mark parses as without one.
func TestParseSkipsByteOrderMark(t *testing.T) {
	s, err := Parse("bom.sim", "\ufeffnodes a b\nlink a-b\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Steps) != 2 || s.Steps[0].Op != OpNodes || s.Steps[0].Line != 1 {
		t.Fatalf("steps %+v, want nodes on line 1 and link", s.Steps)
	}
}

func TestRandomGraphIsConnectedAndRepeatable(t *testing.T) {
	names, _ := expandRange("n1..n40", MaxNodes)
	edges := randomGraph(names, 70, 9)
	if len(edges) != 70 {
		t.Fatalf("%d edges, want 70", len(edges))
	}
	if !reflect.DeepEqual(edges, randomGraph(names, 70, 9)) {
		t.Fatal("the same seed gave another graph")
	}
	if reflect.DeepEqual(edges, randomGraph(names, 70, 10)) {
		t.Fatal("another seed gave the same graph")
	}
	adj := map[string][]string{}
	for _, e := range edges {
		adj[e[0]] = append(adj[e[0]], e[1])
		adj[e[1]] = append(adj[e[1]], e[0])
	}
	seen := map[string]bool{names[0]: true}
	for q := []string{names[0]}; len(q) > 0; q = q[1:] {
		for _, n := range adj[q[0]] {
			if !seen[n] {
				seen[n] = true
				q = append(q, n)
			}
		}
	}
	if len(seen) != len(names) {
		t.Fatalf("random graph reaches %d of %d nodes", len(seen), len(names))
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.sim")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("nodes a b\nlink a-b latency=1ms\npartition {a} {b}\ntransfer a b 1KiB\nexpect route a b via=b hops=1")
	f.Add("regions eu:a,n1..n3 us:b between=30ms..80ms seed=2\ndiscover seed=a nodes=b,n1..n3 order=random\nwait members\nwait reachable timeout=1m\npartition {a} {b}\nheal\nmeasure")
	// The commands and options no file of testdata uses.
	f.Add("nodes a b c\nlink a-b b-c\nwait optimal timeout=1m\nunlink a-b\nprint events a\nkill a\nrestart a\n" +
		"workload pairs=all rate=10 duration=2s size=1KiB seed=3 within=5s\nworkload circuits=5 pairs=random")
	f.Fuzz(func(t *testing.T, src string) {
		s, err := Parse("f", src)
		nlines := strings.Count(src, "\n") + 1
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 || pe.Line > nlines {
				t.Fatalf("error %v is not a *ParseError with a line in 1..%d", err, nlines)
			}
			return
		}
		// A parsed script re-parses from its step texts to the same steps.
		var b strings.Builder
		nodes := 0
		for _, st := range s.Steps {
			if st.Line < 1 || st.Line > nlines || st.Op.String() == "" {
				t.Fatalf("step %+v out of range", st)
			}
			if st.Op == OpNodes {
				nodes += len(st.Nodes)
			}
			if st.Op == OpDiscover {
				nodes += len(st.Nodes) - 1 // the seed may have started before
			}
			b.WriteString(st.Text + "\n")
		}
		if nodes > MaxNodes {
			t.Fatalf("%d nodes parsed, more than %d", nodes, MaxNodes)
		}
		again, err := Parse("f", b.String())
		if err != nil {
			t.Fatalf("step texts do not re-parse: %v", err)
		}
		if len(again.Steps) != len(s.Steps) {
			t.Fatalf("re-parse gave %d steps, want %d", len(again.Steps), len(s.Steps))
		}
		for i := range s.Steps {
			a, b := s.Steps[i], again.Steps[i]
			a.Line, b.Line = 0, 0
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("step %d re-parsed as %+v, want %+v", i, b, a)
			}
		}
	})
}

// TestRandomWithoutSeedIsSeedZero: a script's random without seed= draws
// the graph of seed=0, not one of the run's seed (Config.Seed, --seed,
// default 1): Parse draws it, with no run seed to hand, so the same
// script gives the same graph under every run seed.
func TestRandomWithoutSeedIsSeedZero(t *testing.T) {
	graph := func(src string) [][2]string {
		t.Helper()
		s, err := Parse("random.sim", src)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range s.Steps {
			if st.Op == OpRandom {
				return st.Edges
			}
		}
		t.Fatalf("no random step in %q", src)
		return nil
	}
	def := graph("nodes n1..n12\nrandom edges=20\n")
	if !reflect.DeepEqual(def, graph("nodes n1..n12\nrandom edges=20 seed=0\n")) {
		t.Error("random without seed= drew another graph than seed=0")
	}
	if reflect.DeepEqual(def, graph("nodes n1..n12\nrandom edges=20 seed=1\n")) {
		t.Error("random without seed= drew the graph of seed=1, the run's default seed")
	}
}
