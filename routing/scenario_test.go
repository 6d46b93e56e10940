package routing_test

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the scenario output")

// TestScenarios runs each testdata/*.txt script and compares its output with
// testdata/*.golden. Commands, one per line (# starts a comment):
//
//	config hysteresis=N interval=D   engine settings for nodes created after
//	node NAME...                     create routers
//	leaf NAME...                     create leaf nodes
//	link A B COST                    bring a link up
//	cost A B COST                    change a link's cost
//	down A B / up A B                take a link down / bring it back
//	cut A B / uncut A B              drop messages silently / stop dropping
//	kill NAME                        a node dies
//	partition A,B,... C,D,...        take down links between the groups
//	heal                             bring back links the last partition took
//	run                              step until no message is in flight
//	advance DURATION                 step for a virtual duration
//	table NAME... / tables           print routing tables
//	nexthops NAME DEST               print the next hops, best first
//	events [NAME...]                 print events (of NAME... only) since the
//	                                 last "events", then forget them all
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			got := runScenario(t, f)
			golden := strings.TrimSuffix(f, ".txt") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (run with -update to accept):\n%s", golden, diffLines(string(want), got))
			}
		})
	}
}

type scenario struct {
	t      *testing.T
	n      *routingtest.Network
	cfg    routing.Config
	out    strings.Builder
	events []nodeEvent
	healed []routingtest.Edge
	seed   int64
}

type nodeEvent struct{ node, text string }

func runScenario(t *testing.T, path string) string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := &scenario{t: t, n: routingtest.New(1), cfg: routing.Config{Hysteresis: routing.NoHysteresis}}
	s.n.OnEvent = func(node string, ev routing.Event) {
		s.events = append(s.events, nodeEvent{node, fmt.Sprintf("%s: %s %s%s", node, ev.Kind, ev.Dest, describe(ev.Route))})
	}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			s.out.WriteString(text + "\n")
			continue
		}
		fmt.Fprintf(&s.out, "> %s\n", text)
		if err := s.exec(strings.Fields(text)); err != nil {
			t.Fatalf("%s:%d: %s: %v", path, line, text, err)
		}
	}
	return s.out.String()
}

func describe(r routing.Route) string {
	if !r.Reachable {
		return ""
	}
	return fmt.Sprintf(" via %s metric %d hops %d", r.NextHop, r.Metric, r.Hops)
}

func (s *scenario) exec(f []string) error {
	arg := func(i int) string {
		if i < len(f) {
			return f[i]
		}
		return ""
	}
	cost := func(i int) routing.Metric {
		c, _ := strconv.ParseUint(arg(i), 10, 32)
		return routing.Metric(c)
	}
	switch f[0] {
	case "config":
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "hysteresis":
				h, _ := strconv.ParseUint(v, 10, 32)
				s.cfg.Hysteresis = routing.Metric(h)
				if h == 0 {
					s.cfg.Hysteresis = routing.NoHysteresis
				}
			case "interval":
				d, err := time.ParseDuration(v)
				if err != nil {
					return err
				}
				s.cfg.UpdateInterval = d
			default:
				return fmt.Errorf("unknown setting %q", k)
			}
		}
	case "node", "leaf":
		for _, name := range f[1:] {
			c := s.cfg
			c.Self, c.Leaf, c.Seed = name, f[0] == "leaf", s.seed
			s.seed++
			if err := s.n.AddNode(c); err != nil {
				return err
			}
		}
	case "link":
		return s.n.Link(arg(1), arg(2), cost(3))
	case "cost":
		return s.n.SetCost(arg(1), arg(2), cost(3))
	case "down":
		return s.n.Unlink(arg(1), arg(2))
	case "up":
		return s.n.Relink(arg(1), arg(2))
	case "cut", "uncut":
		s.n.Cut(arg(1), arg(2), f[0] == "cut")
	case "kill":
		s.n.Kill(arg(1))
	case "partition":
		var groups [][]string
		for _, g := range f[1:] {
			groups = append(groups, strings.Split(g, ","))
		}
		s.healed = s.n.Partition(groups...)
	case "heal":
		for _, ed := range s.healed {
			if err := s.n.Relink(ed.A, ed.B); err != nil {
				return err
			}
		}
		s.healed = nil
	case "run":
		r, ok := s.n.RunUntilQuiet(10000)
		if !ok {
			return fmt.Errorf("not quiet after %d rounds", r)
		}
		checkLoopFree(s.t, s.n, nil)
		fmt.Fprintf(&s.out, "quiet after %d rounds\n", r)
	case "advance":
		d, err := time.ParseDuration(arg(1))
		if err != nil {
			return err
		}
		s.n.RunFor(d)
	case "tables":
		s.tables(s.n.Names())
	case "table":
		s.tables(f[1:])
	case "nexthops":
		fmt.Fprintf(&s.out, "%s -> %s: %v\n", arg(1), arg(2), s.n.Engine(arg(1)).NextHops(arg(2)))
	case "events":
		for _, ev := range s.events {
			if len(f) == 1 || slices.Contains(f[1:], ev.node) {
				s.out.WriteString(ev.text + "\n")
			}
		}
		s.events = nil
	default:
		return fmt.Errorf("unknown command %q", f[0])
	}
	return nil
}

func (s *scenario) tables(names []string) {
	for _, name := range names {
		e := s.n.Engine(name)
		if e == nil {
			fmt.Fprintf(&s.out, "%s: (dead)\n", name)
			continue
		}
		fmt.Fprintf(&s.out, "%s:\n", name)
		for _, r := range e.Routes() {
			if r.Reachable {
				fmt.Fprintf(&s.out, "  %-4s via %-4s metric %4d hops %d\n", r.Dest, r.NextHop, r.Metric, r.Hops)
			} else {
				fmt.Fprintf(&s.out, "  %-4s unreachable\n", r.Dest)
			}
		}
	}
}

// diffLines shows the first differing lines of two outputs.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}
