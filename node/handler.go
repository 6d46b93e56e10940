package node

import (
	"errors"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/node/topology"
)

// linkHandler is the node as the links.Handler of its transport: link
// events feed the routing engine and start the link's circuit dispatch. It
// is a separate type so that the events are not part of Node's API.
type linkHandler Node

// Link events of different links to one peer (a link replaced by a
// duplicate or by one to the restarted peer) come from different
// goroutines. linkEvents serialises them so that routing hears them in the
// order the link table changed: otherwise the old link's LinkDown could
// reach routing after the new link's LinkUp, leaving routing without the
// neighbour while the node holds a live link to it.

// LinkUp implements links.Handler.
func (h *linkHandler) LinkUp(l links.Link) {
	n := (*Node)(h)
	peer := l.Peer()
	n.linkEvents.Lock()
	defer n.linkEvents.Unlock()
	// A node with discovery admits a link only within MaxLinks (links
	// beyond it are refused here, before routing or Links see them; a
	// link it evicts to make room leaves the table in the same step).
	routed, replaced, restarted := false, false, false
	add := func(evict links.Link) bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		if !n.upLocked() && n.state != stateClosing {
			return false
		}
		if evict != nil && n.links[evict.Peer()] == evict {
			delete(n.links, evict.Peer())
		}
		if prev := n.links[peer]; prev != nil {
			replaced, restarted = true, peerRestarted(prev, l)
			if n.unadmitted[peer] != prev && !n.unholdLocked(peer, prev) {
				routed = true // routing has the peer as a neighbour already
			}
			delete(n.unadmitted, peer)
		}
		n.links[peer] = l
		n.wg.Add(1)
		return true
	}
	n.mu.Lock()
	bound := n.bound
	n.mu.Unlock()
	var (
		added   bool
		evicted links.Link
		refused string
		hold    bool
	)
	if bound != nil {
		added, evicted, refused, hold = bound.admit(l, add)
	} else {
		added = add(nil)
	}
	if refused != "" {
		n.log.Debug("link refused", "peer", peer, "reason", refused)
		bound.stats.dropped.WithLabelValues(string(topology.WhyMax)).Inc()
		l.Close("discovery: " + refused)
		return
	}
	if !added {
		l.Close("node closed")
		return
	}
	if evicted != nil {
		const why = "room for a link from a member routing could not reach"
		n.log.Debug("discovery closes a link", "peer", evicted.Peer(), "reason", why, "for", peer)
		bound.stats.dropped.WithLabelValues(string(topology.WhyRoom)).Inc()
		n.linkRemoved(evicted, errEvicted)
		evicted.Close("discovery: " + why)
	}
	go func() {
		defer n.wg.Done()
		n.acceptLoop(l)
	}()
	if !replaced { // a replaced link's LinkDown is not counted either
		n.metrics.links.Inc()
	}
	if routed && restarted {
		// The routes learned from the peer before its restart are not in
		// its table now, and it will not retract them: routing drops
		// them as for a link that died, then hears the new link. The old
		// link's own LinkDown comes later and is not routing's (it is no
		// longer the peer's link).
		n.router.linkDown(peer)
		n.events.publish(Event{Kind: LinkDown, Peer: peer, Time: time.Now(), Err: errPeerRestarted})
		routed = false
	}
	if wait := n.flaps.up(peer, time.Now()); wait > 0 {
		n.holdLink(l, routed, wait)
		return
	}
	if hold && !routed {
		// A link discovery dialled may still be refused by the peer at its
		// maximum: routing hears of it once the peer's first routing
		// message shows the peer admitted it (Routing), so that a refused
		// link costs no table sent to it and no route changes.
		n.mu.Lock()
		n.unadmitted[peer] = l
		n.mu.Unlock()
		n.log.Debug("link up, waiting for the peer to admit it", "peer", peer)
		return
	}
	n.routeLink(l)
}

// errPeerRestarted is the LinkDown error of a routed link replaced by a
// link to the restarted peer.
var errPeerRestarted = errors.New("link replaced by a link to the restarted peer")

// peerRestarted reports whether next is a link to another start of the
// peer of prev (links that tell their peer's instance).
func peerRestarted(prev, next links.Link) bool {
	a, b := peerInstance(prev), peerInstance(next)
	return a != 0 && b != 0 && a != b
}

// routeLink gives routing the link and publishes it. n.linkEvents is held.
func (n *Node) routeLink(l links.Link) {
	peer := l.Peer()
	cost, _ := n.linkCost(l)
	n.log.Debug("link up", "peer", peer, "cost", cost)
	n.router.linkUp(peer, cost, l.PeerRole() == links.RoleLeaf)
	n.events.publish(Event{Kind: LinkUp, Peer: peer, Time: time.Now()})
}

// Routing implements links.Handler.
func (h *linkHandler) Routing(l links.Link, payload []byte) {
	n := (*Node)(h)
	peer := l.Peer()
	n.mu.Lock()
	current, waiting := n.links[peer] == l, n.unadmitted[peer] == l
	held := n.held[peer] != nil
	n.mu.Unlock()
	if !current || held {
		return // a stale link's late message, or one routing does not hear yet
	}
	if waiting {
		// The peer admitted the link (it routes over it): routing hears
		// of it now, in link event order.
		n.linkEvents.Lock()
		n.mu.Lock()
		current, waiting = n.links[peer] == l, n.unadmitted[peer] == l
		if waiting {
			delete(n.unadmitted, peer)
		}
		n.mu.Unlock()
		if current && waiting {
			n.routeLink(l)
		}
		n.linkEvents.Unlock()
		if !current {
			return
		}
	}
	n.router.receive(peer, payload)
}

// CostChanged implements links.Handler.
func (h *linkHandler) CostChanged(l links.Link, q links.Quality) {
	n := (*Node)(h)
	if n.link(l.Peer()) != l {
		return
	}
	if _, pinned := n.linkCost(l); pinned && !q.Draining {
		return // routing keeps the pinned cost
	}
	n.router.linkCost(l.Peer(), q.Cost)
}

// LinkDown implements links.Handler.
func (h *linkHandler) LinkDown(l links.Link, err error) {
	n := (*Node)(h)
	peer := l.Peer()
	n.linkEvents.Lock()
	defer n.linkEvents.Unlock()
	n.mu.Lock()
	current := n.links[peer] == l
	if current {
		delete(n.links, peer)
	}
	n.mu.Unlock()
	if !current {
		return // replaced by a newer link, or evicted (LinkUp)
	}
	n.linkRemoved(l, err)
}

// errEvicted is the LinkDown error of a link closed to make room at the
// link maximum.
var errEvicted = errors.New("link closed to make room for a repair link")

// linkRemoved tells routing and subscribers that link l, just removed
// from the table, is down; of a link routing never heard of (its peer did
// not admit it), no one but the metric. n.linkEvents is held.
func (n *Node) linkRemoved(l links.Link, err error) {
	peer := l.Peer()
	n.metrics.links.Dec()
	n.mu.Lock()
	waiting := n.unadmitted[peer] == l
	if waiting {
		delete(n.unadmitted, peer)
	}
	held := n.unholdLocked(peer, l)
	n.mu.Unlock()
	if waiting || held {
		n.log.Debug("link down before routing heard of it", "peer", peer, "err", err)
		return
	}
	n.log.Debug("link down", "peer", peer, "err", err)
	n.router.linkDown(peer)
	n.events.publish(Event{Kind: LinkDown, Peer: peer, Time: time.Now(), Err: err})
}
