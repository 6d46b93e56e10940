package node

import (
	"slices"
	"time"

	"github.com/circuitmesh/circuitmesh/internal/bucket"
	"github.com/circuitmesh/circuitmesh/routing"
)

// How often one peer's reachability changes are reported (PeerUp and
// PeerDown events, and their log lines): a burst of reachBurst, then
// reachRate a second. A neighbour that is a peer's only route can make
// routing take it down and up once per routing message (a retraction,
// then the route again at a lower metric, which is feasible each time):
// without this bound a node reported each change to its subscribers and
// log, tens of thousands a second for a few bytes each.
const (
	reachRate  = 1.0
	reachBurst = 8
)

// reachDamper decides which reachability changes of routing are
// reported. A change beyond the peer's budget is held back: once the
// budget allows, the peer's state then is reported if it differs from
// the last reported, with the number of changes held back. A peer that
// comes up without an entry is reported and gets none: only a PeerDown
// starts one (so a mesh coming up, every peer once, adds no entry), and
// entries whose budget is full again and that hold nothing are swept at
// most every reachSweep. Not safe for concurrent use (router.mu).
type reachDamper struct {
	peers     map[string]*reachState
	held      map[string]*reachState // peers with changes held back
	lastSweep time.Time
	// lost holds the PeerDown of routing for each peer that a neighbour
	// still advertises (unfeasibly) until its deadline: routing asked
	// for a new seqno, and the route usually comes back before (hold).
	// At most maxLostHeld.
	lost map[string]lostDown
}

// lostDown is a PeerDown of routing held back until at.
type lostDown struct {
	at time.Time
	rt routing.Route
}

// maxLostHeld bounds the PeerDowns held at once: beyond, a loss is
// reported at once (many peers lost together is no flap).
const maxLostHeld = 64

type reachState struct {
	budget     bucket.Bucket
	shown, cur bool // reachable as last reported, and as routing says now
	changes    int  // changes held back since the last report
}

// reachSweep is how often entries are swept: the time an emptied budget
// takes to fill.
const reachSweep = time.Duration(reachBurst / reachRate * float64(time.Second))

func newReachDamper() *reachDamper {
	return &reachDamper{peers: map[string]*reachState{}, held: map[string]*reachState{}, lost: map[string]lostDown{}}
}

// note reports whether routing's change of peer to up (reachable or not)
// at now is reported at once; if not, it is held back.
func (d *reachDamper) note(peer string, up bool, now time.Time) bool {
	s := d.peers[peer]
	if s == nil {
		if up {
			return true
		}
		d.sweep(now)
		s = &reachState{budget: bucket.Full(reachRate, reachBurst, now), shown: true}
		d.peers[peer] = s
	}
	s.cur = up
	if _, waiting := d.held[peer]; !waiting && s.budget.Refill(now).Tokens >= 1 {
		s.budget.Tokens--
		s.shown = up
		return true
	}
	s.changes++
	d.held[peer] = s
	return false
}

// due calls report for each peer whose held changes may be reported at
// now, with its state then and the changes held back; changed is false
// when the changes cancelled out (the state is the one last reported).
func (d *reachDamper) due(now time.Time, report func(peer string, up, changed bool, changes int)) {
	for peer, s := range d.held {
		if s.budget.Refill(now).Tokens < 1 {
			continue
		}
		s.budget.Tokens--
		delete(d.held, peer)
		changed := s.cur != s.shown
		s.shown = s.cur
		n := s.changes
		s.changes = 0
		report(peer, s.cur, changed, n)
	}
}

// hold holds routing's PeerDown of rt.Dest until at, and reports
// whether it did (no room: report it now).
func (d *reachDamper) hold(rt routing.Route, at time.Time) bool {
	if _, ok := d.lost[rt.Dest]; !ok && len(d.lost) >= maxLostHeld {
		return false
	}
	d.lost[rt.Dest] = lostDown{at: at, rt: rt}
	return true
}

// back forgets the PeerDown held for peer, whose route came back, and
// reports whether there was one.
func (d *reachDamper) back(peer string) bool {
	_, ok := d.lost[peer]
	delete(d.lost, peer)
	return ok
}

// lostDue calls report, and forgets, each PeerDown held whose deadline
// is past at now or whose peer no neighbour advertises any more
// (advertised), in the order of the peers' names (a simulation run
// again publishes the same events in the same order).
func (d *reachDamper) lostDue(now time.Time, advertised func(string) bool, report func(routing.Route)) {
	var due []string
	for peer, l := range d.lost {
		if !now.Before(l.at) || !advertised(peer) {
			due = append(due, peer)
		}
	}
	slices.Sort(due)
	for _, peer := range due {
		l := d.lost[peer]
		delete(d.lost, peer)
		report(l.rt)
	}
}

// next is when the first held change is due (zero: none held): a
// millisecond after its token is earned, so that due, refilling at that
// time, finds the token whatever the rounding (a loop woken for it must
// not find it missing and wake again at once, which under virtual time
// would never end).
func (d *reachDamper) next() time.Time {
	var at time.Time
	for _, s := range d.held {
		t := s.budget.Last
		if missing := 1 - s.budget.Tokens; missing > 0 {
			t = t.Add(time.Duration(missing/s.budget.Rate*float64(time.Second)) + time.Millisecond)
		}
		if at.IsZero() || t.Before(at) {
			at = t
		}
	}
	for _, l := range d.lost {
		if at.IsZero() || l.at.Before(at) {
			at = l.at
		}
	}
	return at
}

// sweep forgets the peers whose budget is full again and that hold
// nothing, at most every reachSweep.
func (d *reachDamper) sweep(now time.Time) {
	if len(d.peers) == 0 || now.Sub(d.lastSweep) < reachSweep {
		return
	}
	d.lastSweep = now
	for peer, s := range d.peers {
		if _, waiting := d.held[peer]; !waiting && s.budget.Refill(now).Tokens >= s.budget.Burst {
			delete(d.peers, peer)
		}
	}
}
