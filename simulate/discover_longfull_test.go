package simulate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/node"
	"github.com/circuitmesh/circuitmesh/node/topology"
)

// TestDiscoverLongLinkAtMaxMinusOne: 32 routers in two regions join by
// gossip with TargetLinks 3 and MaxLinks 4. Once the mesh has settled, a
// node x at its maximum, whose links are its long link (to l), its two
// near links and incoming ones, loses its link to
// l: the underlay between just the two fails until the link ends. x is
// then at Max − 1 links, none of which its long link may replace.
// Before, x kept that last slot free and held no long link from then on;
// now it dials it again (l, or another of the routers the hash ranks
// first if l refuses at its maximum), and holds a long link from then on
// (moving it to a router ranked before, once that one has room, or to
// one ranked after only when the router ended the link itself).
// One case is by design: when every one of those routers refused x at
// its maximum (l filled the slot x's link left before x dialled it
// again) and, while x backs off from them, a link another node dialled
// takes x's last slot, x is at its maximum again: it has no room and
// changes nothing, holding no long link while that link stays
// (docs/DISCOVERY.md). The test then checks that this is what happened
// (about one run in 100, which failed before it told the case apart).
// The same holds when such a link comes up before x dialled its long
// link again at all (seen once, on a machine at a load average above
// 10).
func TestDiscoverLongLinkAtMaxMinusOne(t *testing.T) {
	synctest.Test(t, testLongLinkAtMaxMinusOne)
}

func testLongLinkAtMaxMinusOne(t *testing.T) {
	const target, maxLinks = 3, 4
	// Which settled topology the joins reach depends on the order the
	// goroutines ran in; in about one mesh in forty no node has the
	// shape below, and a fresh mesh is joined (four in a row without
	// one would be one in 2.5 million).
	var (
		m      *longMesh
		x, l   string
		cands  []string // x's long link's routers in hash order
		meshes int
		// refused: when each router last refused a node's link at its
		// maximum, as the node's warnings say.
		refused = &refusals{at: map[[2]string]time.Time{}}
	)
	for try := 0; try < 4 && x == ""; try++ {
		if m != nil {
			t.Logf("mesh %d: no node like x; joining a fresh one", try)
			if err := m.c.Close(); err != nil {
				t.Fatal(err)
			}
		}
		m = newLongMesh(t, 32, target, func(cfg *node.Config) {
			cfg.Discovery.MaxLinks = maxLinks
			cfg.Logger = slog.New(refused.handler(cfg.Name))
		})
		m.join()
		x, l, cands = m.atMaxWithLongLink(maxLinks)
		meshes = try + 1
	}
	if x == "" {
		t.Fatalf("in %d meshes no node at its maximum holds a link it dialled to one of its long link's routers and otherwise only near and incoming links", meshes)
	}
	c := m.c
	t.Logf("%s holds %v; its long link is to %s (the hash ranks %v first)", x, slices.Sorted(maps.Keys(m.peers(x))), l, cands)

	// up: when x's links came up since it began to lose l.
	var upMu sync.Mutex
	up := map[string]time.Time{}
	stopUp, err := c.Node(x).SubscribeFunc(func(ev node.Event) {
		if ev.Kind == node.LinkUp {
			upMu.Lock()
			up[ev.Peer] = time.Now()
			upMu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stopUp()
	held := m.peers(x) // x's links before it began to lose l
	partitioned := time.Now()
	if err := c.PartitionUnderlay([]string{x}, []string{l}); err != nil {
		t.Fatal(err)
	}
	err = pollFor(2*time.Minute, func() error {
		if _, ok := m.peers(x)[l]; ok {
			return fmt.Errorf("%s still holds its link to %s", x, l)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// x is at Max − 1 once the link ends, and dials its long link at
	// once: between two polls it may already hold it again.
	ls := m.peers(x)
	redialled := slices.ContainsFunc(cands, func(p string) bool { li, ok := ls[p]; return ok && li.Outbound })
	if taken := takenSince(ls, held, up, &upMu); len(ls) == maxLinks && !redialled && taken != "" {
		// By design too (above), one step earlier: the link another
		// node dialled came up before x dialled its long link again.
		t.Logf("%s is at its maximum with no long link after losing %s, by design: %s, which dialled %s, took its last slot first; links %v",
			x, l, taken, x, slices.Sorted(maps.Keys(ls)))
		return
	}
	if left := len(ls); left != maxLinks-1 && (left != maxLinks || !redialled) {
		t.Fatalf("%s holds %v after losing %s: want %d links (Max − 1), or %d with one it dialled to %v", x, slices.Sorted(maps.Keys(ls)), l, maxLinks-1, maxLinks, cands)
	}
	// ended: why x's last link to each peer ended, as its LinkDown events
	// say (a link x closed itself wraps links.ErrClosed).
	var mu sync.Mutex
	ended := map[string]error{}
	stop, err := c.Node(x).SubscribeFunc(func(ev node.Event) {
		if ev.Kind == node.LinkDown {
			mu.Lock()
			ended[ev.Peer] = ev.Err
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := c.HealUnderlay(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	long := func() string {
		ls := m.peers(x)
		for _, p := range cands {
			if li, ok := ls[p]; ok && li.Outbound {
				return p
			}
		}
		return ""
	}
	err = pollFor(3*time.Minute, func() error {
		if long() == "" {
			return fmt.Errorf("%s holds no link it dialled to %v", x, cands)
		}
		return nil
	})
	if err != nil {
		// By design (above): every router of x's long link refused x at
		// its maximum, l after x lost its link, and a link x did not
		// dial, up since, holds x's last slot.
		ls := m.peers(x)
		taken := takenSince(ls, nil, up, &upMu)
		all := !slices.ContainsFunc(cands, func(p string) bool { return refused.last(x, p).IsZero() })
		if len(ls) == maxLinks && taken != "" && all && refused.last(x, l).After(partitioned) {
			t.Logf("%s is at its maximum with no long link 3 minutes after the heal, by design: %v refused it at their maximum (%s after it lost its link) and %s, which dialled %s, took its last slot; links %v",
				x, cands, l, taken, x, slices.Sorted(maps.Keys(ls)))
			return
		}
		t.Fatalf("%v 3 minutes after the heal (virtual): %s has links %v", err, x, slices.Sorted(maps.Keys(ls)))
	}
	got := long()
	t.Logf("%s dialled %s %v after the heal; it holds %v", x, got, time.Since(healed).Round(time.Millisecond), slices.Sorted(maps.Keys(m.peers(x))))
	// Held: x keeps a long link from then on. A router ranked before the
	// one it took, full at the heal, is dialled again at its back-off and
	// replaces it once it has room (make before break): x drops its long
	// link only for one ranked before it, never for one ranked after or
	// for none. The router of its long link may end the link itself (at
	// its maximum it refuses a link as it comes up, or drops a young
	// incoming one when a crossing dial took it above), and x then takes
	// the next router in hash order, as for a router that refused it:
	// that move is allowed, not one after x closed the link.
	for range 24 {
		time.Sleep(5 * time.Second)
		if li, ok := m.peers(x)[got]; ok && li.Outbound {
			continue
		}
		mu.Lock()
		why := ended[got]
		mu.Unlock()
		now := long()
		if now == "" {
			err := pollFor(time.Minute, func() error {
				if now = long(); now == "" {
					return fmt.Errorf("%s holds no link it dialled to %v", x, cands)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("%v a minute after its long link to %s ended (%v), %v after the heal: links %v", err, got, why, time.Since(healed).Round(time.Second), slices.Sorted(maps.Keys(m.peers(x))))
			}
		}
		if slices.Index(cands, now) > slices.Index(cands, got) && (why == nil || errors.Is(why, links.ErrClosed)) {
			t.Fatalf("%s no longer holds its long link to %s (ended: %v), but one to %s, ranked after it, %v after the heal: links %v", x, got, why, now, time.Since(healed).Round(time.Second), slices.Sorted(maps.Keys(m.peers(x))))
		}
		if now != got {
			t.Logf("%s moved its long link from %s to %s %v after the heal; its link to %s ended: %v", x, got, now, time.Since(healed).Round(time.Second), got, why)
			got = now
		}
	}
}

// takenSince is a link of ls that x did not dial and that came up since
// up began to record (up guarded by mu), or "" when none did. With held
// (x's links before), it must be the one link of ls to a peer held did
// not have.
func takenSince(ls, held map[string]node.LinkInfo, up map[string]time.Time, mu *sync.Mutex) string {
	var added []string
	for p := range ls {
		if _, ok := held[p]; held == nil || !ok {
			added = append(added, p)
		}
	}
	if held != nil && len(added) != 1 {
		return ""
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range added {
		if _, ok := up[p]; ok && !ls[p].Outbound {
			return p
		}
	}
	return ""
}

// TestDiscoverLongLinkPassesFullRouter: 32 routers in two regions join by
// gossip with TargetLinks 3. Once the mesh has settled, the router l of a
// node x's long link restarts linking to one router at most (TargetLinks
// and MaxLinks 1), so that it refuses x's link at its maximum. x takes
// the next router in hash order, b, in the other region, as its long
// link, and holds it (x is cut off from the routers it dialled beyond
// its near ones but l, so that no link it dialled as its long link
// before is its long link then). Before, it dialled l again at every
// back-off and held no long link (b was never dialled). Then l restarts
// with the default maximum: x links to l again at its next dial and
// drops b once its link to l is 10 s old (make before break), and holds
// l after.
func TestDiscoverLongLinkPassesFullRouter(t *testing.T) {
	synctest.Test(t, testLongLinkPassesFullRouter)
}

func testLongLinkPassesFullRouter(t *testing.T) {
	const target = 3
	// node.DiscoveryConfig's default maximum.
	maxLinks := max(topology.DefaultMax, 2*target)
	var small atomic.Pointer[string] // the router at its maximum of 1
	m := newLongMesh(t, 32, target, func(cfg *node.Config) {
		if l := small.Load(); l != nil && cfg.Name == *l {
			cfg.Discovery.TargetLinks, cfg.Discovery.MaxLinks = 1, 1
		}
	})
	c := m.c
	ctx := context.Background()
	m.join()
	// x: a node holding a link it dialled to l, the router the hash ranks
	// first for its long link; the next, b, in the other region. x's
	// other links it dialled beyond its near ones (shortcuts, or one it
	// dialled as its long link before, which would stay its long link
	// once l is gone) end: the underlay between x and their routers
	// fails for the rest of the test.
	x, l, b, cut := m.passing(maxLinks)
	if cut = slices.DeleteFunc(cut, func(p string) bool { return p == l }); len(cut) > 0 {
		m.cutOff(x, cut)
		t.Logf("%s cut off from %v, the routers it dialled beyond its near ones but %s", x, cut, l)
	}
	restart := func(max1 bool) {
		t.Helper()
		if err := c.Kill(l); err != nil {
			t.Fatal(err)
		}
		if max1 {
			small.Store(&l)
		} else {
			small.Store(nil)
		}
		if err := c.Restart(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s holds %v; %s, its long link's router, restarts with at most 1 link; %s is next in hash order", x, slices.Sorted(maps.Keys(m.peers(x))), l, b)
	restart(true)
	full := time.Now()
	err := pollFor(3*time.Minute, func() error {
		if li, ok := m.peers(x)[b]; !ok || !li.Outbound {
			return fmt.Errorf("%s holds no link it dialled to %s", x, b)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v 3 minutes after %s restarted at most 1 link (virtual): links %v", err, l, slices.Sorted(maps.Keys(m.peers(x))))
	}
	t.Logf("%s dialled %s %v after %s restarted; links %v", x, b, time.Since(full).Round(time.Millisecond), l, slices.Sorted(maps.Keys(m.peers(x))))
	time.Sleep(time.Minute)
	if li, ok := m.peers(x)[b]; !ok || !li.Outbound {
		t.Fatalf("%s no longer holds its link to %s a minute after: links %v", x, b, slices.Sorted(maps.Keys(m.peers(x))))
	}
	if _, ok := m.peers(x)[l]; ok {
		t.Fatalf("%s holds a link to %s, which holds at most 1 and has %v", x, l, slices.Sorted(maps.Keys(m.peers(l))))
	}

	// l restarts with the default maximum.
	restart(false)
	restarted := time.Now()
	err = pollFor(10*time.Minute, func() error {
		ls := m.peers(x)
		if li, ok := ls[l]; !ok || !li.Outbound {
			return fmt.Errorf("%s holds no link it dialled to %s", x, l)
		}
		if _, ok := ls[b]; ok {
			return fmt.Errorf("%s still holds its link to %s", x, b)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v 10 minutes after %s restarted with room (virtual): links %v", err, l, slices.Sorted(maps.Keys(m.peers(x))))
	}
	t.Logf("%s linked to %s again and dropped %s %v after %s restarted with room; links %v", x, l, b, time.Since(restarted).Round(time.Millisecond), l, slices.Sorted(maps.Keys(m.peers(x))))
	for range 24 {
		time.Sleep(5 * time.Second)
		ls := m.peers(x)
		if _, ok := ls[l]; !ok {
			t.Fatalf("%s no longer holds its link to %s %v after: links %v", x, l, time.Since(restarted).Round(time.Second), slices.Sorted(maps.Keys(ls)))
		}
		if _, ok := ls[b]; ok {
			t.Fatalf("%s dialled %s again %v after: links %v", x, b, time.Since(restarted).Round(time.Second), slices.Sorted(maps.Keys(ls)))
		}
	}
}

// atMaxWithLongLink finds a node x at maxLinks links with an outgoing
// link to l, one of the routers the hash ranks first for its long link
// (the first that has room), which does not want x (it would dial x
// back); every other outgoing link of x goes to a near neighbour, and no
// other of those routers is linked to x. cands are x's long link's
// routers in hash order. x is "" when no node is like that.
func (m *longMesh) atMaxWithLongLink(maxLinks int) (x, l string, cands []string) {
	for _, name := range m.names {
		long, near := m.wants(name)
		cs := []string{long}
		for len(cs) < topology.LongTries {
			next, _ := m.wants(name, cs...)
			cs = append(cs, next)
		}
		ls := m.peers(name)
		if len(ls) != maxLinks {
			continue
		}
		var held string
		for _, p := range cs {
			if li, ok := ls[p]; ok && li.Outbound {
				held = p
				break
			}
		}
		if held == "" {
			continue
		}
		back, bnear := m.wants(held)
		ok := back != name && !slices.Contains(bnear, name)
		for p, li := range ls {
			if li.Outbound && p != held && !slices.Contains(near, p) {
				ok = false
			}
		}
		// A link another of these routers dialled to x already serves as
		// x's long link once l is lost: x then has none to dial.
		for _, p := range cs {
			if _, linked := ls[p]; linked && p != held {
				ok = false
			}
		}
		if ok {
			return name, held, cs
		}
	}
	return "", "", nil
}

// refusalMsg is the warning a node logs when a router refused its link
// at the router's maximum.
const refusalMsg = "gossip member refused the link: at its link maximum; linking to others"

// refusals records when each router last refused a node's link at its
// maximum, from the nodes' warnings.
type refusals struct {
	mu sync.Mutex
	at map[[2]string]time.Time // by node and router
}

// last returns when router last refused self's link (zero if never).
func (r *refusals) last(self, router string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.at[[2]string{self, router}]
}

// handler returns a log handler for the node self that records its
// refusals and discards the rest.
func (r *refusals) handler(self string) slog.Handler { return refusalHandler{r: r, self: self} }

type refusalHandler struct {
	r    *refusals
	self string
}

func (h refusalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h refusalHandler) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message != refusalMsg {
		return nil
	}
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "member" {
			h.r.mu.Lock()
			h.r.at[[2]string{h.self, a.Value.String()}] = rec.Time
			h.r.mu.Unlock()
			return false
		}
		return true
	})
	return nil
}

func (h refusalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }

func (h refusalHandler) WithGroup(string) slog.Handler { return h }
