package routing_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// newNet builds a network of the named nodes with cfg as a template.
func newNet(t testing.TB, seed int64, cfg routing.Config, names ...string) *routingtest.Network {
	t.Helper()
	n := routingtest.New(seed)
	for i, name := range names {
		c := cfg
		c.Self = name
		c.Seed = seed + int64(i)
		if err := n.AddNode(c); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func mustLink(t testing.TB, n *routingtest.Network, a, b string, cost routing.Metric) {
	t.Helper()
	if err := n.Link(a, b, cost); err != nil {
		t.Fatal(err)
	}
}

func quiet(t testing.TB, n *routingtest.Network) int {
	t.Helper()
	r, ok := n.RunUntilQuiet(2000)
	if !ok {
		t.Fatalf("network not quiet after %d rounds", r)
	}
	return r
}

var t0 = time.Unix(1_700_000_000, 0)

func TestLineConverges(t *testing.T) {
	n := newNet(t, 1, routing.Config{}, "a", "b", "c", "d")
	mustLink(t, n, "a", "b", 10)
	mustLink(t, n, "b", "c", 20)
	mustLink(t, n, "c", "d", 30)
	quiet(t, n)
	r, ok := n.Engine("a").Lookup("d")
	if !ok || r.NextHop != "b" || r.Metric != 60 || r.Hops != 3 {
		t.Fatalf("a->d = %+v, %v; want via b, metric 60, 3 hops", r, ok)
	}
	if got := n.Engine("d").NextHops("a"); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("d next hops to a = %v", got)
	}
}

func TestNeighbourReachableBeforeUpdate(t *testing.T) {
	e, err := routing.New(routing.Config{Self: "a"})
	if err != nil {
		t.Fatal(err)
	}
	e.LinkUp(t0, "b", 15, false)
	r, ok := e.Lookup("b")
	if !ok || r.NextHop != "b" || r.Metric != 15 || r.Hops != 1 {
		t.Fatalf("Lookup(b) = %+v, %v", r, ok)
	}
	rd := e.Ready()
	if len(rd.Events) != 1 || rd.Events[0].Kind != routing.PeerUp || rd.Events[0].Dest != "b" {
		t.Fatalf("events = %+v, want one PeerUp for b", rd.Events)
	}
	if len(rd.Messages) != 2 || !routing.IsHello(rd.Messages[0].Payload) || rd.Messages[1].To != "b" {
		t.Fatalf("messages = %+v, want a hello and a first update to b", rd.Messages)
	}
	e.LinkDown(t0, "b")
	rd = e.Ready()
	if len(rd.Events) != 1 || rd.Events[0].Kind != routing.PeerDown {
		t.Fatalf("events after LinkDown = %+v, want PeerDown", rd.Events)
	}
	if _, ok := e.Lookup("b"); ok {
		t.Fatal("b still reachable after LinkDown")
	}
}

func TestSelfLookup(t *testing.T) {
	e, _ := routing.New(routing.Config{Self: "a"})
	r, ok := e.Lookup("a")
	if !ok || r.Metric != 0 || r.NextHop != "" {
		t.Fatalf("Lookup(self) = %+v %v", r, ok)
	}
	if len(e.NextHops("a")) != 0 || len(e.Routes()) != 0 {
		t.Fatal("self must not appear in NextHops or Routes")
	}
}

func TestConfigValidation(t *testing.T) {
	bad := []routing.Config{
		{},
		{Self: string(make([]byte, 256))},
		{Self: "a", Infinity: 1},
		{Self: "a", UpdateInterval: time.Second, RouteExpiry: time.Second},
		{Self: "a", MaxRoutesPerMessage: 241},
		{Self: "a", MaxRoutes: -1},
	}
	for i, c := range bad {
		if _, err := routing.New(c); !errors.Is(err, routing.ErrInvalidConfig) {
			t.Errorf("config %d: err = %v, want ErrInvalidConfig", i, err)
		}
	}
	e, err := routing.New(routing.Config{Self: "a"})
	if err != nil {
		t.Fatal(err)
	}
	c := e.Config()
	if c.Infinity != routing.DefaultInfinity || c.Hysteresis != routing.DefaultHysteresis ||
		c.UpdateInterval != 4*time.Second || c.RouteExpiry != 14*time.Second ||
		c.MinTriggeredInterval != 50*time.Millisecond || c.MaxRoutes != 4096 || c.MaxRoutesPerMessage != 64 {
		t.Fatalf("defaults = %+v", c)
	}
	e, _ = routing.New(routing.Config{Self: "a", Hysteresis: routing.NoHysteresis})
	if e.Config().Hysteresis != 0 {
		t.Fatalf("NoHysteresis gives margin %d", e.Config().Hysteresis)
	}
}

func TestMalformedChangesNothing(t *testing.T) {
	e, _ := routing.New(routing.Config{Self: "a"})
	e.LinkUp(t0, "b", 10, false)
	e.Ready()
	before := e.Routes()
	for _, p := range [][]byte{nil, {3}, {2, 0, 0}, {3, 0, 1, 1, 1, 'x'}, {3, 0, 1, 9, 1, 'x', 0, 0, 0}} {
		if err := e.Receive(t0, "b", p); !errors.Is(err, routing.ErrMalformed) {
			t.Fatalf("Receive(%v) = %v, want ErrMalformed", p, err)
		}
	}
	if !slices.Equal(before, e.Routes()) || e.HasReady() || e.Pending() {
		t.Fatal("malformed message changed state or produced output")
	}
	if got := e.Stats().Malformed; got != 5 {
		t.Fatalf("Malformed = %d, want 5", got)
	}
	if err := e.Receive(t0, "zz", nil); !errors.Is(err, routing.ErrUnknownNeighbour) {
		t.Fatalf("from unknown = %v", err)
	}
}

func TestTableBound(t *testing.T) {
	names := []string{"hub"}
	for i := range 10 {
		names = append(names, fmt.Sprintf("n%d", i))
	}
	n := newNet(t, 3, routing.Config{MaxRoutes: 5}, names...)
	for _, s := range names[1:] {
		mustLink(t, n, "hub", s, 10)
	}
	quiet(t, n)
	for _, s := range names {
		st := n.Engine(s).Stats()
		if st.Destinations > 5 {
			t.Fatalf("%s holds %d destinations, bound is 5", s, st.Destinations)
		}
	}
	if n.Engine("hub").Stats().RefusedOrigins == 0 || n.Engine("n9").Stats().RefusedOrigins == 0 {
		t.Fatal("refusals not counted")
	}
}

func TestLeafEngineAdvertisesOnlyItself(t *testing.T) {
	n := newNet(t, 4, routing.Config{}, "a", "c")
	if err := n.AddNode(routing.Config{Self: "l", Leaf: true}); err != nil {
		t.Fatal(err)
	}
	mustLink(t, n, "a", "l", 10)
	mustLink(t, n, "l", "c", 10)
	quiet(t, n)
	if _, ok := n.Engine("a").Lookup("c"); ok {
		t.Fatal("a reaches c through leaf l")
	}
	if r, ok := n.Engine("a").Lookup("l"); !ok || r.Metric != 10 {
		t.Fatalf("a cannot reach leaf l: %+v", r)
	}
	if r, ok := n.Engine("l").Lookup("c"); !ok || r.NextHop != "c" {
		t.Fatalf("leaf cannot reach its neighbour: %+v", r)
	}
}

// TestDeterministic: the same inputs and seeds give the same outputs, byte
// for byte, even with loss and reordering in the network.
func TestDeterministic(t *testing.T) {
	run := func() (string, routingtest.Counters) {
		n := buildRandom(t, graphSpec{nodes: 40, avgDegree: 4, seed: 5}, routing.Config{UpdateInterval: time.Second})
		n.DropRate, n.MaxDelay = 0.1, 2
		var log strings.Builder
		n.OnEvent = func(node string, ev routing.Event) {
			fmt.Fprintf(&log, "%d %s %s %s %+v\n", n.Round, node, ev.Kind, ev.Dest, ev.Route)
		}
		for range 100 {
			n.StepRound()
		}
		n.Kill(busiest(n))
		for range 100 {
			n.StepRound()
		}
		return log.String(), n.Counters
	}
	l1, c1 := run()
	l2, c2 := run()
	if l1 != l2 || c1 != c2 {
		t.Fatalf("two identical runs differ: counters %+v vs %+v", c1, c2)
	}
	if c1.Sent == 0 || len(l1) == 0 {
		t.Fatal("nothing happened")
	}
}

// A neighbour advertises a finite route to another neighbour only when
// its own next hop there is not this node: in a triangle a–b–c, c is a's
// detour to b (though not a feasible alternate: it is no closer to b than
// a), and once b–c is gone, c reaches b only through a and is none.
func TestDetours(t *testing.T) {
	n := newNet(t, 1, routing.Config{}, "a", "b", "c")
	mustLink(t, n, "a", "b", 10)
	mustLink(t, n, "a", "c", 10)
	mustLink(t, n, "b", "c", 10)
	quiet(t, n)
	if got := n.Engine("a").Detours("b"); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("a's detours to b in a triangle = %v, want [c]", got)
	}
	if got := n.Engine("a").NextHops("b"); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("a's next hops to b = %v, want [b] (c's route is not feasible)", got)
	}
	if err := n.Unlink("b", "c"); err != nil {
		t.Fatal(err)
	}
	quiet(t, n)
	if got := n.Engine("a").Detours("b"); len(got) != 0 {
		t.Fatalf("a's detours to b on the line c–a–b = %v, want none", got)
	}
	if got := n.Engine("a").Detours("zz"); got != nil {
		t.Fatalf("detours to an unknown node = %v", got)
	}
}

// recordingCertifier is plainCertifier keeping the names it is asked to
// verify, as a certifier with a cache of its own would.
type recordingCertifier struct {
	plainCertifier
	seen *[]string
}

func (c recordingCertifier) Verify(origin string, epoch uint64, seqno uint16, att []byte) error {
	*c.seen = append(*c.seen, origin)
	return c.plainCertifier.Verify(origin, epoch, seqno, att)
}

// The names of a received message enter the table (and reach the
// Certifier) as copies: a caller may reuse the buffer of a message once
// Receive returns.
func TestReceivedNamesOutliveTheMessage(t *testing.T) {
	for _, certified := range []bool{false, true} {
		t.Run(fmt.Sprintf("certified=%v", certified), func(t *testing.T) {
			// One certifier per engine, so that each checks what it
			// receives (engines sharing one share its verdicts).
			var seen [3][]string
			cfg := func(i int, self string) routing.Config {
				c := routing.Config{Self: self}
				if certified {
					c.Certifier = recordingCertifier{seen: &seen[i]}
				}
				return c
			}
			engines := map[string]*routing.Engine{}
			for i, name := range []string{"far", "mid", "near"} {
				e, err := routing.New(cfg(i, name))
				if err != nil {
					t.Fatal(err)
				}
				engines[name] = e
			}
			link := func(a, b string) {
				engines[a].LinkUp(t0, b, 10, false)
				engines[b].LinkUp(t0, a, 10, false)
			}
			link("far", "mid")
			link("mid", "near")
			// Deliver every message, then overwrite it.
			now := t0
			for range 10 {
				now = now.Add(100 * time.Millisecond)
				for _, from := range []string{"far", "mid", "near"} {
					engines[from].Tick(now)
					for _, m := range engines[from].Ready().Messages {
						if err := engines[m.To].Receive(now, from, m.Payload); err != nil {
							t.Fatal(err)
						}
						for i := range m.Payload {
							m.Payload[i] = 'X'
						}
					}
				}
			}
			var dests []string
			for _, r := range engines["near"].Routes() {
				dests = append(dests, r.Dest)
			}
			if !slices.Equal(dests, []string{"far", "mid"}) {
				t.Fatalf("near holds routes to %q, want far and mid", dests)
			}
			if r, ok := engines["near"].Lookup("far"); !ok || r.NextHop != "mid" {
				t.Fatalf("near -> far = %+v, %v; want via mid", r, ok)
			}
			all := slices.Concat(seen[:]...)
			for _, name := range all {
				if strings.Contains(name, "X") {
					t.Fatalf("the certifier kept %q, which changed with the message", name)
				}
			}
			if certified && !slices.Contains(seen[2], "far") {
				t.Fatalf("near's certifier checked %q, not far", seen[2])
			}
		})
	}
}

// A new link to a neighbour routing already has (the old link replaced,
// e.g. the neighbour restarted or the link was dialled again) gets the
// whole table again: the neighbour may have nothing of it, and a node that
// waits for a first routing message to admit the link must get one.
func TestLinkUpAgainSendsTheTableAgain(t *testing.T) {
	e, err := routing.New(routing.Config{Self: "a"})
	if err != nil {
		t.Fatal(err)
	}
	e.LinkUp(t0, "b", 15, false)
	if rd := e.Ready(); len(rd.Messages) != 2 || !routing.IsHello(rd.Messages[0].Payload) || rd.Messages[1].To != "b" {
		t.Fatalf("messages = %+v, want a hello and a first update to b", rd.Messages)
	}
	if rd := e.Ready(); len(rd.Messages) != 0 {
		t.Fatalf("messages with nothing new = %+v, want none", rd.Messages)
	}
	// The new link may lead to another release: a hello again.
	e.LinkUp(t0, "b", 15, false)
	if rd := e.Ready(); len(rd.Messages) != 2 || !routing.IsHello(rd.Messages[0].Payload) || rd.Messages[1].To != "b" {
		t.Fatalf("messages after a new link to b = %+v, want a hello and the table sent to b again", rd.Messages)
	}
}

// TestStatsReachableCountsReachableRoutes: Stats.Reachable is the number
// of Routes that are reachable as routes come, are withdrawn, are
// forgotten and come back.
func TestStatsReachableCountsReachableRoutes(t *testing.T) {
	n := newNet(t, 1, routing.Config{}, "a", "b", "c", "d")
	mustLink(t, n, "a", "b", 10)
	mustLink(t, n, "b", "c", 10)
	mustLink(t, n, "c", "d", 10)
	for _, step := range []struct {
		when        string
		do          func() error
		want, dests int
	}{
		{"line a-b-c-d", nil, 3, 3},
		{"b-c down", func() error { return n.Unlink("b", "c") }, 1, 3},
		{"c and d forgotten", func() error { n.RunFor(10 * time.Minute); return nil }, 1, 1},
		{"b-c up again", func() error { return n.Relink("b", "c") }, 3, 3},
		{"a alone", func() error { return n.Unlink("a", "b") }, 0, 3},
	} {
		if step.do != nil {
			if err := step.do(); err != nil {
				t.Fatal(err)
			}
		}
		quiet(t, n)
		e := n.Engine("a")
		got := reachableRoutes(e)
		if st := e.Stats(); st.Reachable != got || got != step.want || st.Destinations != step.dests {
			t.Fatalf("%s: Stats.Reachable %d, %d of %d routes reachable, want %d of %d", step.when, st.Reachable, got, st.Destinations, step.want, step.dests)
		}
	}
}
