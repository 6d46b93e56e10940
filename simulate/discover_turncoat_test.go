package simulate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/node"
)

// turncoat is the link handler of a member that routes like any node
// until mute is set, then closes its links and sends no routing message
// on any link, old or new.
type turncoat struct {
	links.Handler
	mute *atomic.Bool
	mu   sync.Mutex
	live map[links.Link]*turncoatLink
}

type turncoatLink struct {
	links.Link
	mute *atomic.Bool
}

func (l *turncoatLink) SendRouting(p []byte) error {
	if l.mute.Load() {
		return nil
	}
	return l.Link.SendRouting(p)
}

func (h *turncoat) wrap(l links.Link) *turncoatLink {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.live[l]
	if w == nil {
		w = &turncoatLink{Link: l, mute: h.mute}
		h.live[l] = w
	}
	return w
}

func (h *turncoat) LinkUp(l links.Link)                       { h.Handler.LinkUp(h.wrap(l)) }
func (h *turncoat) Routing(l links.Link, p []byte)            { h.Handler.Routing(h.wrap(l), p) }
func (h *turncoat) CostChanged(l links.Link, q links.Quality) { h.Handler.CostChanged(h.wrap(l), q) }
func (h *turncoat) LinkDown(l links.Link, err error) {
	w := h.wrap(l)
	h.mu.Lock()
	delete(h.live, l)
	h.mu.Unlock()
	h.Handler.LinkDown(w, err)
}

// turn mutes the member and closes its links.
func (h *turncoat) turn() {
	h.mute.Store(true)
	h.mu.Lock()
	var ls []links.Link
	for l := range h.live {
		ls = append(ls, l)
	}
	h.mu.Unlock()
	for _, l := range ls {
		l.Close("going mute")
	}
}

// TestDiscoverMuteMemberLosesItsVouch: 10 honest gossip nodes (MaxLinks
// and TargetLinks 3: every node full) and m, which routes like any node
// for 5 minutes, so that every node's routing reaches it, then closes its
// links and sends no routing message on any link again, staying a gossip
// member whose discovery dials and accepts links as any node's does. A
// node at its maximum gives up a link to make room for a lost member only
// if routing reached that member once (it vouches for it). Before, the
// vouch never ended: a node that barred m for a mute link vouched for it
// again when the bar ended, and a link that carried no routing vouched
// anew (routing reaches a neighbour over the route its link implies), so
// the honest nodes gave up 38 honest links for m in the 50 minutes after
// it went mute, 16 of them from 10 to 50 minutes. Now a node that bars a
// member forgets its vouch, and only a route some node advertised
// vouches: 14 to 22 links in the first 7 minutes (before each node's
// first bar of m), none after.
func TestDiscoverMuteMemberLosesItsVouch(t *testing.T) {
	if testing.Short() && raceOn {
		t.Skip("55 virtual minutes of 11 nodes: about 40 s under the race detector; runs in -short without it (about 10 s)")
	}
	synctest.Test(t, func(t *testing.T) {
		const honest = 10
		var names, good []string
		for i := 1; i <= honest+1; i++ {
			name := fmt.Sprintf("n%d", i)
			names = append(names, name)
			if i <= honest {
				good = append(good, name)
			}
		}
		m := names[honest]
		tc := &turncoat{mute: new(atomic.Bool), live: map[links.Link]*turncoatLink{}}
		c, err := NewCluster(Config{Backend: BackendMem, NodeConfig: func(cfg *node.Config) {
			cfg.Discovery.MaxLinks, cfg.Discovery.TargetLinks = 3, 3
			if cfg.Name != m {
				return
			}
			newTransport := cfg.NewTransport
			cfg.NewTransport = func(h links.Handler, role links.Role) (links.Transport, error) {
				tc.Handler = h
				return newTransport(tc, role)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := c.Close(); err != nil {
				t.Error(err)
			}
		}()
		if err := c.Discover(context.Background(), names[0], names[1:]...); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Minute)
		reached := 0
		for _, a := range good {
			if _, ok, err := c.Route(a, m); err == nil && ok {
				reached++
			}
		}
		if reached < honest {
			t.Fatalf("%d of %d honest nodes reach %s before it goes mute", reached, honest, m)
		}
		from := time.Now()
		tc.turn()
		const settle, watch = 10 * time.Minute, 50 * time.Minute
		time.Sleep(watch)
		var early, late []string
		for _, a := range good {
			evs, err := c.Events(a)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				// The end that gave the link up says so.
				if e.Time.Before(from) || e.Kind != "link-down" || !strings.Contains(e.Err, "closed: discovery: room for a link to a member routing cannot reach") {
					continue
				}
				at := e.Time.Sub(from)
				room := fmt.Sprintf("%s-%s@%v", a, e.Peer, at.Round(time.Second))
				if at < settle {
					early = append(early, room)
				} else {
					late = append(late, room)
				}
			}
		}
		slices.Sort(early)
		slices.Sort(late)
		t.Logf("after %s went mute, honest links given up for room: %d in the first %v %v, %d from then to %v %v", m, len(early), settle, early, len(late), watch, late)
		if len(late) > 0 {
			t.Errorf("honest nodes gave up %d links to make room for %s from %v to %v after it went mute: %v", len(late), m, settle, watch, late)
		}
	})
}
