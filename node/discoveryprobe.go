package node

import (
	"net"
	"net/netip"
	"time"
)

// The link policy's own probes (topology.Plan.Probe). Gossip probes one
// member a second, chosen at random, so a node among a thousand members
// learns the round trip to few of its nearest in the first minutes; the
// policy chooses replacements and shortcuts by measured round trips only
// (a coordinate is the member's own report). Each step it has the round
// trip measured to the nearest members by coordinate that have none, at
// most topology.DefaultProbes a step, one round at a time.

// probeAgain is how long a member whose round trip was asked for is not
// asked for again (it did not answer, or left).
const probeAgain = time.Minute

// probingLocked lists the members asked for less than probeAgain ago and
// forgets the others. d.mu is held.
func (d *discovery) probingLocked(now time.Time) []string {
	var out []string
	for name, at := range d.asked {
		if now.Sub(at) >= probeAgain {
			delete(d.asked, name)
			continue
		}
		out = append(out, name)
	}
	return out
}

// probe measures the round trip to the members names (gossip's direct
// ping, answered by the member's memberlist), one after the other in a
// goroutine of the node, unless a round runs already; each answer is
// recorded as a probe's.
func (d *discovery) probe(names []string, now time.Time) {
	if len(names) == 0 || !d.pinging.CompareAndSwap(false, true) {
		return
	}
	type target struct {
		name string
		addr net.Addr
	}
	var ts []target
	d.mu.Lock()
	for _, name := range names {
		ap, err := netip.ParseAddrPort(d.members[name].gossip)
		if err != nil || len(d.asked) >= maxCoords {
			continue
		}
		d.asked[name] = now
		ts = append(ts, target{name, net.UDPAddrFromAddrPort(ap)})
	}
	d.mu.Unlock()
	if len(ts) == 0 {
		d.pinging.Store(false)
		return
	}
	n := d.n
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer d.pinging.Store(false)
		for _, t := range ts {
			if n.ctx.Err() != nil {
				return
			}
			rtt, err := d.ml.Ping(t.name, t.addr)
			if err != nil || rtt <= 0 {
				continue
			}
			d.mu.Lock()
			if _, member := d.members[t.name]; member {
				if r, ok := d.rtts[t.name]; ok || len(d.rtts) < maxCoords {
					d.rtts[t.name] = probeRTT{last: rtt, prev: r.last}
				}
			}
			d.mu.Unlock()
		}
	}()
}
