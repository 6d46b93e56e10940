package node

import (
	"errors"
	"math"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/routing"
)

// Link flap damping. Each time a neighbour's link comes up, routing sends
// it the whole table, and each time it goes down, every route through it
// is withdrawn and the nodes behind ask the neighbour's origin for a new
// seqno: one link cycle makes the mesh exchange messages in proportion
// to its links. A member can cycle its link for the price of a
// handshake, tens of times a second, and a faulty link can do the same.
// So a peer whose links come up again within flapQuick of the previous
// one gathers a penalty (one a time, halving every flapHalfLife, as in
// BGP route flap damping, RFC 2439); a link that comes up while the
// penalty is at flapSuppress or more is held from routing until it has
// decayed to flapReuse (at most 60 s). A held link is up, counted
// and probed, but routing, Links' subscribers and the peer's routing
// messages do not see it. A peer that restarts now and then, or whose
// link comes up once after a fault, gathers no penalty.
const (
	flapQuick      = 10 * time.Second
	flapHalfLife   = 15 * time.Second
	flapSuppress   = 4.0
	flapReuse      = 2.0
	flapMaxPenalty = flapReuse * 16 // a hold of at most 4 half-lives: 60 s
	// flapPeers bounds the peers tracked: one entry per certified name
	// that linked; when full, entries with no penalty left go, and a peer
	// beyond is not damped.
	flapPeers = 4096
)

type flapState struct {
	penalty float64
	at      time.Time // when penalty was last decayed
	lastUp  time.Time // when the peer's last link came up
}

// flapDamper holds the peers' penalties. Not safe for concurrent use
// (linkEvents).
type flapDamper struct {
	peers    map[string]*flapState
	halfLife time.Duration // 0: flapHalfLife
}

// up notes that a link to peer came up at now; it returns how long
// routing must wait to hear of it (0: at once).
func (d *flapDamper) up(peer string, now time.Time) time.Duration {
	s := d.peers[peer]
	if s == nil {
		if d.peers == nil {
			d.peers = make(map[string]*flapState)
		}
		if len(d.peers) >= flapPeers && !d.sweep(now) {
			return 0
		}
		d.peers[peer] = &flapState{at: now, lastUp: now}
		return 0
	}
	d.decay(s, now)
	if now.Sub(s.lastUp) < flapQuick {
		s.penalty = min(s.penalty+1, flapMaxPenalty)
	}
	s.lastUp = now
	if s.penalty < flapSuppress {
		return 0
	}
	return d.hold(s)
}

// wait is how long a link held since an earlier up must still wait at
// now.
func (d *flapDamper) wait(peer string, now time.Time) time.Duration {
	s := d.peers[peer]
	if s == nil {
		return 0
	}
	d.decay(s, now)
	return d.hold(s)
}

func (d *flapDamper) half() time.Duration {
	if d.halfLife > 0 {
		return d.halfLife
	}
	return flapHalfLife
}

func (d *flapDamper) decay(s *flapState, now time.Time) {
	if dt := now.Sub(s.at); dt > 0 {
		s.penalty *= math.Exp2(-dt.Seconds() / d.half().Seconds())
		s.at = now
	}
}

// hold is the time s's penalty takes to decay to flapReuse (at most
// flapMaxPenalty's).
func (d *flapDamper) hold(s *flapState) time.Duration {
	if s.penalty <= flapReuse {
		return 0
	}
	return time.Duration(math.Log2(s.penalty/flapReuse) * float64(d.half()))
}

// sweep removes the entries of peers that cannot count a flap any more
// (last up longer than flapQuick ago) and hold no penalty worth keeping;
// it reports whether there is room.
func (d *flapDamper) sweep(now time.Time) bool {
	for peer, s := range d.peers {
		if d.decay(s, now); now.Sub(s.lastUp) >= flapQuick && s.penalty < 0.5 {
			delete(d.peers, peer)
		}
	}
	return len(d.peers) < flapPeers
}

// heldLink is a link flap damping holds from routing until its timer.
type heldLink struct {
	l     links.Link
	timer *time.Timer
}

// holdLink holds l from routing for wait. routed: routing has the peer as
// a neighbour through the link l replaced, which it now loses.
// n.linkEvents is held.
func (n *Node) holdLink(l links.Link, routed bool, wait time.Duration) {
	peer := l.Peer()
	if routed {
		n.router.linkDown(peer)
		n.events.publish(Event{Kind: LinkDown, Peer: peer, Time: time.Now(), Err: errFlapHeld})
	}
	n.mu.Lock()
	// The timer's function takes linkEvents, held here: it cannot run
	// before the entry is in place.
	n.held[peer] = &heldLink{l: l, timer: time.AfterFunc(wait, func() { n.releaseHeld(l) })}
	n.mu.Unlock()
	// The peer hears nothing of routing on the link while it is held: a
	// hello tells it that this node speaks routing, so that it does not
	// take the link for one that carries nothing and close it (mute
	// links, discoverymute.go).
	_ = l.SendRouting(routing.Hello())
	n.flapLog.Warn(peer, "link held from routing: the peer's links came up and went down too often",
		"peer", peer, "for", wait.Round(time.Second))
}

// errFlapHeld is the LinkDown error of a routed link replaced by one that
// flap damping holds.
var errFlapHeld = errors.New("link replaced too often: held from routing")

// unholdLocked forgets the held link l of peer and reports whether l was
// held. n.mu is held.
func (n *Node) unholdLocked(peer string, l links.Link) bool {
	h := n.held[peer]
	if h == nil || h.l != l {
		return false
	}
	h.timer.Stop()
	delete(n.held, peer)
	return true
}

// releaseHeld gives routing the held link l once its penalty decayed (it
// runs on l's timer).
func (n *Node) releaseHeld(l links.Link) {
	peer := l.Peer()
	n.linkEvents.Lock()
	defer n.linkEvents.Unlock()
	n.mu.Lock()
	h := n.held[peer]
	if h == nil || h.l != l || n.links[peer] != l || !n.upLocked() {
		n.mu.Unlock()
		return
	}
	if wait := n.flaps.wait(peer, time.Now()); wait > 0 {
		h.timer = time.AfterFunc(wait, func() { n.releaseHeld(l) })
		n.mu.Unlock()
		return
	}
	delete(n.held, peer)
	n.wg.Add(1) // Close waits for routeLink below
	n.mu.Unlock()
	defer n.wg.Done()
	n.log.Info("held link given to routing", "peer", peer)
	n.routeLink(l)
}
