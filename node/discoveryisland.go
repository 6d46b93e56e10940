package node

import "time"

// islandEvery is how often a node cut off from most of the members it
// knows (islandPickLocked) may dial a member its back-off or ban of
// unproven addresses bars.
const islandEvery = 30 * time.Second

// islandPickLocked returns the lost member this node may dial although
// it is barred, or "": while routing reaches fewer alive members than it
// has lost (this node's side, as routing sees it, is the smaller), every
// lost router member is barred (a back-off or the ban of unproven
// addresses, not a dial in progress), and no such dial was made within
// islandEvery, the member whose bar ends first among those ranked first
// (islandRankLocked). On a CPU-starved machine
// an honest member's handshake can be silent for HandshakeTimeout; two
// such dials ban it for an hour like a forged member's address, and two
// nodes whose bans covered every other member stayed linked only to each
// other with free slots. barred maps each barred lost member to when its
// bar ends; d.mu is held.
func (d *discovery) islandPickLocked(now time.Time, reached, lost int, barred map[string]time.Time) string {
	if d.n.cfg.Leaf || lost == 0 || reached >= lost || len(barred) < lost || len(d.dialing) >= maxDialing {
		return ""
	}
	if !d.islandAt.IsZero() && now.Sub(d.islandAt) < islandEvery {
		return ""
	}
	pick, rank, first := "", 0, time.Time{}
	for name, until := range barred {
		r := d.islandRankLocked(name)
		if pick == "" || r < rank || r == rank && (until.Before(first) || until.Equal(first) && name < pick) {
			pick, rank, first = name, r, until
		}
	}
	return pick
}

// islandRankLocked ranks member name for islandPickLocked: 0 when the
// operator named it (its gossip address is one Join resolved to) or its
// signed metadata verified, else 1, an unverified claim. Among equal
// ranks the bar that ends first wins, so an address not yet failed (no
// bar of its own) before one that failed. Before, the pick was by bar end
// and then by name alone: a stranger's made-up members at many silent
// ports, named to sort first, took every island dial, and a node joining
// through an honest node of their host linked to none for minutes.
// d.mu is held.
func (d *discovery) islandRankLocked(name string) int {
	gm, ok := d.members[name]
	if ok && (gm.verified || gm.gossip != "" && d.joinAddrs[gm.gossip]) {
		return 0
	}
	return 1
}

// barUntilLocked is when the bar on dialling member at addr ends: its
// address's back-off, or the ban of its unproven addresses (its strikes
// too). d.mu is held.
func (d *discovery) barUntilLocked(member, addr string) time.Time {
	var until time.Time
	if b := d.backoff[addr]; b != nil {
		until = d.banEndLocked(b, member, addr)
	}
	if d.proven[addr] != member {
		if b := d.unproven[member]; b != nil {
			if end := d.banEndLocked(b, member, addr); end.After(until) {
				until = end
			}
		}
		if end := d.strikeBanLocked(member, time.Now()); end.After(until) {
			until = end
		}
	}
	return until
}
