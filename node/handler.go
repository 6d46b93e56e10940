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
	add := func(evict links.Link) bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.state != stateRunning && n.state != stateClosing {
			return false
		}
		if evict != nil && n.links[evict.Peer()] == evict {
			delete(n.links, evict.Peer())
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
	)
	if bound != nil {
		added, evicted, refused = bound.admit(l, add)
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
		n.linkRemoved(evicted.Peer(), errEvicted)
		evicted.Close("discovery: " + why)
	}
	go func() {
		defer n.wg.Done()
		n.acceptLoop(l)
	}()
	cost, _ := n.linkCost(l)
	n.log.Debug("link up", "peer", peer, "cost", cost)
	n.metrics.links.Inc()
	n.router.linkUp(peer, cost, l.PeerRole() == links.RoleLeaf)
	n.events.publish(Event{Kind: LinkUp, Peer: peer, Time: time.Now()})
}

// Routing implements links.Handler.
func (h *linkHandler) Routing(l links.Link, payload []byte) {
	n := (*Node)(h)
	if n.link(l.Peer()) != l {
		return // a stale link's late message
	}
	n.router.receive(l.Peer(), payload)
}

// CostChanged implements links.Handler.
func (h *linkHandler) CostChanged(l links.Link, q links.Quality) {
	n := (*Node)(h)
	if n.link(l.Peer()) != l {
		return
	}
	if _, pinned := n.linkCost(l); pinned {
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
	n.linkRemoved(peer, err)
}

// errEvicted is the LinkDown error of a link closed to make room at the
// link maximum.
var errEvicted = errors.New("link closed to make room for a repair link")

// linkRemoved tells routing and subscribers that the link to peer, just
// removed from the table, is down. n.linkEvents is held.
func (n *Node) linkRemoved(peer string, err error) {
	n.log.Debug("link down", "peer", peer, "err", err)
	n.metrics.links.Dec()
	n.router.linkDown(peer)
	n.events.publish(Event{Kind: LinkDown, Peer: peer, Time: time.Now(), Err: err})
}
