package node

import (
	"time"

	"github.com/circuitmesh/circuitmesh/node/topology"
)

// stranded counts, for each of peers (neighbours of this node), the
// destinations among dests whose route has that peer as next hop and no
// feasible alternate (routing's NextHops): closing the link would leave
// them unreachable from this node, and from every node whose route
// follows it, until the origin's newer seqno makes another path feasible
// (Babel's feasibility condition). The routing lock is taken once for
// all destinations.
func (r *router) stranded(self string, dests []string, peers map[string]bool) map[string]int {
	out := make(map[string]int, len(peers))
	if len(peers) == 0 {
		return out
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, dest := range dests {
		if dest == self {
			continue
		}
		if next, ok := r.eng.NextHop(dest); ok && peers[next] && len(r.eng.NextHops(dest)) < 2 {
			out[next]++
		}
	}
	return out
}

// strandedLinks returns router.stranded for the links the policy may
// replace: outgoing, not static, and old enough (topology.DefaultMinAge).
// The others get no count; the policy replaces none of them.
func (d *discovery) strandedLinks(members []string, current []LinkInfo, now time.Time) map[string]int {
	var peers map[string]bool
	d.mu.Lock()
	for _, l := range current {
		if l.Outbound && !d.static[l.Address] && !d.static[l.Peer] && now.Sub(l.Since) >= topology.DefaultMinAge {
			if peers == nil {
				peers = map[string]bool{}
			}
			peers[l.Peer] = true
		}
	}
	d.mu.Unlock()
	if peers == nil {
		return nil
	}
	return d.n.router.stranded(d.n.cfg.Name, members, peers)
}
