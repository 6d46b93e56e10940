package node

import (
	"fmt"
	"slices"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/node/topology"
)

// Mute links. A link over which routing hears nothing of its peer (no
// message from it, a hello included, no route to it, not even one that is
// not feasible) carries nothing the mesh can use: no route goes through it
// and none leads to the peer. An honest peer sends its routing table as
// the link comes up (or a hello while it holds the link from routing:
// flap damping), so it is heard within a round trip or two; a peer that keeps a link and
// never speaks routing is a certificate holder holding one of this node's
// link slots for nothing. Before, such links were kept for good: incoming
// links are never dropped as unwanted, room for a repair link is only made
// in place of a link whose peer another neighbour reaches, and three of
// them linking to a node as it started held all its slots
// (TestAttackSilentLinksEclipseJoiner); and a gossip member that never
// spoke routing was lost at every node, so every node dialled it for
// repair or gave up an honest link to make room for it
// (TestAttackSilentMemberTakesSlotsEverywhere).
//
// Once a link has lived muteGraceLocked with routing hearing nothing of
// its peer (over that link or any other) all that time, the policy step
// closes it if this node dialled it, or, if the peer did, while it keeps
// this node at its maximum, and bars the peer: it is not
// dialled, its links are refused at admission, and no link is given up to
// make room for it, for muteBanMin, doubling with each further mute link
// up to muteBanMax; a link the peer dials from a new instance ends the
// running bar once (liftMuteLocked). A peer that routing reaches through other neighbours
// is not mute: it routes, and holds a slot as any member may. Links the
// operator configured (static) and links this node holds from routing
// itself (flap damping) are not judged; nor are outgoing links discovery
// did not dial (Node.Link).
//
// Links that die young bar their member the same way. A link this node
// dialled that ends before it lived goodLink, neither refused at the
// peer's maximum nor closed by this node, counts against the member's
// name; youngLinks of them in a row bar it (muteLocked), and so does each
// further one until a link to it lives goodLink, which forgets the count.
// While the count runs, a link coming up does not end its address's count
// of failed dials, so the policy keeps preferring other members. Before, a
// young link only backed its address off (1 s doubling to 5 min) and a
// link coming up ended the count: 3 members that accept every link and
// close it 3 s later had a 30-node mesh at MaxLinks 4 link to them about
// 250 times in 10 minutes, one node to the same one 6 times, and honest
// nodes unreachable from others (TestDiscoverDroppersStopChurningTheMesh).
// A dialled link that a link of the same peer instance replaced as its
// duplicate (the two nodes dialled each other at once) lives on as that
// link (replacement), whose end is the dial's: before, the node whose
// dial lost counted it, and three such crossings barred an honest member
// (TestCrossedDialsDoNotBarMember).
const (
	muteBanMin = 5 * time.Minute
	muteBanMax = time.Hour
	// muteForget is how long after its ban ended a peer's count of mute
	// links is forgotten.
	muteForget = time.Hour
	maxMuted   = 1024
	// youngLinks is how many links in a row dying young bar a member.
	youngLinks = 3
	// muteGraceMax bounds muteGraceLocked.
	muteGraceMax = 2 * time.Minute
)

// muteEntry is a peer barred for mute links, or links that died young.
type muteEntry struct {
	n     int       // bars so far
	until time.Time // end of the bar
	// young counts the links this node dialled to the peer that died
	// young in a row (diedYoungLocked), the last at youngAt.
	young   int
	youngAt time.Time
	// inst is the instance of the peer whose link was the last mute one
	// (links.QUICTransport's PeerInstance; 0 where the transport does not
	// tell). lifted: a new instance of the peer ended a bar early once
	// (liftMuteLocked).
	inst   uint64
	lifted bool
}

// muteBan is the bar after the n-th mute link of a peer.
func muteBan(n int) time.Duration {
	return min(muteBanMin<<min(max(n-1, 0), 16), muteBanMax)
}

// muteGraceLocked is how long routing may hear nothing of a link's peer
// before the link counts as mute: goodLink, or twice the lost grace
// (which grows with the links' RTTs and the policy timer's lateness on a
// starved node, where the first routing message of an honest peer may
// take seconds), whichever is longer, at most muteGraceMax. d.mu is held.
func (d *discovery) muteGraceLocked() time.Duration {
	return min(max(goodLink, 2*d.lostGraceLocked()), muteGraceMax)
}

// mutedLocked reports whether peer is barred for a mute link at now.
// d.mu is held.
func (d *discovery) mutedLocked(peer string, now time.Time) bool {
	e := d.muted[peer]
	return e != nil && now.Before(e.until)
}

// heardLocked notes whether routing hears peer at now, the peer of a link
// up since since, and reports whether the link is mute: routing heard
// nothing of the peer for the grace, since the link came up. d.mu is held.
func (d *discovery) heardLocked(peer string, heard bool, since, now time.Time, grace time.Duration) bool {
	if heard {
		d.quiet[peer] = now
		return false
	}
	last, ok := d.quiet[peer]
	if !ok || last.Before(since) {
		last = since
		d.quiet[peer] = since
	}
	return now.Sub(last) >= grace
}

// muteLocked bars peer after a mute link to its instance inst, and
// returns how long. The peer's vouch (d.reached) ends with it: before, a
// member that routed once and then went mute was vouched for again at
// every bar's end, and nodes at their maximum gave up honest links for it
// again and again (TestDiscoverMuteMemberLosesItsVouch). d.mu is held.
func (d *discovery) muteLocked(peer string, inst uint64, now time.Time) time.Duration {
	e := d.muteEntryLocked(peer, now)
	e.n++
	e.inst = inst
	delete(d.reached, peer)
	ban := muteBan(e.n)
	e.until = now.Add(ban)
	return ban
}

// diedYoungLocked counts a link this node dialled to peer's instance inst
// that died young, and bars peer (muteLocked) from the youngLinks-th in a
// row: it returns how long, or 0. d.mu is held.
func (d *discovery) diedYoungLocked(peer string, inst uint64, now time.Time) time.Duration {
	e := d.muteEntryLocked(peer, now)
	e.young++
	e.youngAt = now
	if e.young < youngLinks {
		return 0
	}
	return d.muteLocked(peer, inst, now)
}

// livedLocked forgets the young links of peer: a link to it lived
// goodLink. d.mu is held.
func (d *discovery) livedLocked(peer string) {
	if e := d.muted[peer]; e != nil {
		e.young = 0
	}
}

// youngLocked is how many links to peer died young in a row. d.mu is
// held.
func (d *discovery) youngLocked(peer string) int {
	if e := d.muted[peer]; e != nil {
		return e.young
	}
	return 0
}

// muteEntryLocked returns peer's entry, made if it has none; a full
// table first forgets ended entries, then the one whose bar ends first.
// d.mu is held.
func (d *discovery) muteEntryLocked(peer string, now time.Time) *muteEntry {
	e := d.muted[peer]
	if e == nil {
		if len(d.muted) >= maxMuted {
			d.sweepMutedLocked(now)
		}
		if len(d.muted) >= maxMuted {
			// Full of running bars: the one ending first goes.
			var first string
			for p, o := range d.muted {
				if first == "" || o.until.Before(d.muted[first].until) {
					first = p
				}
			}
			delete(d.muted, first)
		}
		e = &muteEntry{}
		d.muted[peer] = e
	}
	return e
}

// liftMuteLocked ends peer's running bar when l, a link the peer dialled,
// comes from another instance of it than the mute link did (the peer
// restarted: an honest node mute for a while, say one that started slowly
// under load, is healthy again), once per entry: the count of mute links
// is kept, so that the next mute link bars the peer for twice as long, and
// a peer that restarts again and again is lifted only the first time
// until its entry is forgotten (muteForget). It reports whether it lifted
// the bar. d.mu is held.
func (d *discovery) liftMuteLocked(peer string, l links.Link, now time.Time) bool {
	e := d.muted[peer]
	inst := peerInstance(l)
	if e == nil || !now.Before(e.until) || e.lifted || inst == 0 || e.inst == 0 || inst == e.inst {
		return false
	}
	e.until, e.lifted = now, true
	return true
}

// peerInstance is the instance of l's peer (the number its transport drew
// at its start), or 0 where the link does not tell it.
func peerInstance(l links.Link) uint64 {
	if il, ok := l.(interface{ PeerInstance() uint64 }); ok {
		return il.PeerInstance()
	}
	return 0
}

// sweepMutedLocked forgets the peers whose bar ended, and whose last
// link that died young ended, muteForget ago. d.mu is held.
func (d *discovery) sweepMutedLocked(now time.Time) {
	for p, e := range d.muted {
		if now.Sub(e.until) >= muteForget && now.Sub(e.youngAt) >= muteForget {
			delete(d.muted, p)
		}
	}
}

// muteLinks closes the links of current that are mute (heardLocked), bars
// their peers, and returns current without them. heard reports whether
// routing hears a peer. Called by the policy step before it describes the
// links, so that the slots freed are the step's to fill. A link of current
// that another link to its peer replaced meanwhile (the peer restarted,
// or dialled again) is not judged: the link closed is the one that was
// mute, never its replacement.
func (d *discovery) muteLinks(current []LinkInfo, heard func(peer string) bool, now time.Time) []LinkInfo {
	n := d.n
	type muteLink struct {
		l   links.Link
		ban time.Duration
	}
	var closing []muteLink
	hear := make(map[string]bool, len(current))
	for _, l := range current {
		hear[l.Peer] = heard(l.Peer)
	}
	n.mu.Lock()
	held := map[string]bool{}
	for peer := range n.held {
		held[peer] = true
	}
	live := make(map[string]links.Link, len(current))
	for _, l := range current {
		if ll := n.links[l.Peer]; ll != nil && ll.Established().Equal(l.Since) {
			live[l.Peer] = ll
		}
	}
	n.mu.Unlock()
	d.mu.Lock()
	d.sweepMutedLocked(now)
	grace := d.muteGraceLocked()
	ls, pending := d.slotsLocked(now, nil)
	full := topology.Slots(d.policyConfig(), ls, pending) == 0
	linked := make(map[string]bool, len(current))
	for _, l := range current {
		linked[l.Peer] = true
		static := d.static[l.Address] || d.static[l.Peer]
		if static || held[l.Peer] || l.Outbound && !d.owned[l.Peer] && d.held[l.Peer] == nil {
			delete(d.quiet, l.Peer)
			continue
		}
		ll := live[l.Peer]
		if ll == nil {
			continue // replaced or gone since current was taken
		}
		// An incoming mute link is closed only while it keeps this node
		// at its maximum: below it the peer holds a slot it dialled
		// itself, as any member may, and closing it would only send the
		// peer to dial another node, which may be full and give up an
		// honest link to admit it (a repair link).
		if d.heardLocked(l.Peer, hear[l.Peer], l.Since, now, grace) && (l.Outbound || full) {
			delete(d.quiet, l.Peer)
			closing = append(closing, muteLink{l: ll, ban: d.muteLocked(l.Peer, peerInstance(ll), now)})
		}
	}
	for p := range d.quiet {
		if !linked[p] {
			delete(d.quiet, p)
		}
	}
	d.mu.Unlock()
	if len(closing) == 0 {
		return current
	}
	for _, c := range closing {
		reason := fmt.Sprintf("routing heard nothing of the peer over the link in %v; not linked again for %v", grace.Round(time.Second), c.ban)
		n.log.Warn("discovery closes a link that carries no routing", "peer", c.l.Peer(), "grace", grace.Round(time.Second), "barred_for", c.ban)
		d.dropLink(c.l, whyMute, reason)
	}
	return slices.DeleteFunc(slices.Clone(current), func(l LinkInfo) bool {
		return slices.ContainsFunc(closing, func(c muteLink) bool { return c.l.Peer() == l.Peer })
	})
}

// heard reports whether routing heard of peer itself: the peer, a
// neighbour, spoke routing over its link (routing.Engine.Announced: a
// message, or its own route, not only the implicit route routing makes
// for a neighbour as its link comes up), or another neighbour advertises
// a route to it (the peer routes, over other links).
func (r *router) heard(peer string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng.Announced(peer) || len(r.eng.Detours(peer)) > 0
}
