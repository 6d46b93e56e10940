package node

import (
	"fmt"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

// MaxLinkCost is the largest cost SetLinkCost and Config.LinkCosts accept
// (a little above 167 s of RTT in link cost units, far beyond any real link).
const MaxLinkCost links.Cost = 1 << 24

// MaxLinkCostPins bounds the peers whose link cost is pinned at once.
const MaxLinkCostPins = 4096

// SetLinkCost pins the cost routing uses for the link to peer, now and for
// every later link to it, instead of the measured cost; cost 0 returns to
// the measured cost. The change reaches routing at once, so routes move
// with the next update. The link's measurement goes on either way and
// Links shows both the cost in use and whether it is pinned. While the
// peer drains, its link costs the highest whatever is pinned.
func (n *Node) SetLinkCost(peer string, cost links.Cost) error {
	if err := identity.ValidateName(peer); err != nil {
		return fmt.Errorf("set link cost of %q: %w", peer, err)
	}
	if cost != 0 && (cost < links.MinCost || cost > MaxLinkCost) {
		return fmt.Errorf("set link cost of %s to %d: want %d to %d, or 0 for the measured cost: %w",
			peer, cost, links.MinCost, MaxLinkCost, ErrInvalidConfig)
	}
	n.mu.Lock()
	_, pinned := n.pins[peer]
	switch {
	case cost == 0:
		delete(n.pins, peer)
	case !pinned && len(n.pins) >= MaxLinkCostPins:
		n.mu.Unlock()
		return fmt.Errorf("set link cost of %s: %d peers pinned already (MaxLinkCostPins): %w", peer, MaxLinkCostPins, ErrInvalidConfig)
	default:
		n.pins[peer] = cost
	}
	l := n.links[peer]
	n.mu.Unlock()
	if l != nil {
		c, _ := n.linkCost(l)
		n.router.linkCost(peer, c)
	}
	n.log.Info("link cost set", "peer", peer, "cost", costText(cost))
	return nil
}

// linkCost is the cost routing uses for l: the highest while the peer
// drains, else pinned by configuration or SetLinkCost, else measured.
func (n *Node) linkCost(l links.Link) (cost links.Cost, pinned bool) {
	q := l.Quality()
	n.mu.Lock()
	c, ok := n.pins[l.Peer()]
	n.mu.Unlock()
	switch {
	case q.Draining:
		return q.Cost, ok || q.Pinned
	case ok:
		return c, true
	}
	return q.Cost, q.Pinned
}

func costText(c links.Cost) string {
	if c == 0 {
		return "measured"
	}
	return fmt.Sprint(c)
}
