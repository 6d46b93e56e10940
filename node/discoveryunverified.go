package node

import (
	"fmt"
	"time"
)

// Members whose metadata this node did not verify (unsigned, or signed
// by a member whose certificate it does not know yet) are claims: without
// a gossip key anyone who reaches the gossip port can make them up, and
// memberlist keeps each, probes it and sends it in every push-pull. At
// most maxUnverified of them are taken (NotifyAlive refuses more, so that
// memberlist does not take them either); members whose signed metadata
// verifies are always taken. The bound keeps this node's push-pull state
// within what a joining node takes as its join's answer (gossipHeldShare
// charged: 4,096 states of the largest metadata and a name of 253 bytes
// are about 3.7 MiB).
//
// An unverified member memberlist drops (dead or left) still counts for
// unverifiedGone: memberlist keeps a dead member in its table, and in its
// push-pulls, until the end of the probe round GossipToTheDeadTime after
// its death, and a stranger can declare its made-up members dead itself.
const maxUnverified = 4096

// unverifiedGone is how long an unverified member memberlist dropped
// still counts against maxUnverified: memberlist's GossipToTheDeadTime,
// then a probe round of twice the members listed (members taken during
// a round are put at random places in it).
func (d *discovery) unverifiedGone() time.Duration {
	return d.deadTime + 2*time.Duration(len(d.members)+1)*d.probeEvery
}

// admitUnverifiedLocked reports whether memberlist may take name, whose
// metadata did not verify: it counts already, or there is room. d.mu is
// held.
func (d *discovery) admitUnverifiedLocked(name string) error {
	if _, ok := d.unverified[name]; ok {
		return nil
	}
	if len(d.unverified) >= maxUnverified {
		return fmt.Errorf("member %s: %d members with unverified metadata known: %w", name, maxUnverified, errMembersFull)
	}
	d.unverified[name] = time.Time{}
	return nil
}

// unverifiedListedLocked and unverifiedDroppedLocked note that
// memberlist lists (NotifyJoin, NotifyUpdate) or dropped (NotifyLeave)
// an unverified member. d.mu is held.
func (d *discovery) unverifiedListedLocked(name string) {
	if _, ok := d.unverified[name]; ok {
		d.unverified[name] = time.Time{}
	}
}

func (d *discovery) unverifiedDroppedLocked(name string, now time.Time) {
	if at, ok := d.unverified[name]; ok && at.IsZero() {
		d.unverified[name] = now
	}
}

// expireUnverified stops counting the unverified members memberlist
// dropped longer than unverifiedGone ago. It runs in the policy step.
func (d *discovery) expireUnverified(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	gone := d.unverifiedGone()
	for name, at := range d.unverified {
		if !at.IsZero() && now.Sub(at) >= gone {
			delete(d.unverified, name)
		}
	}
}
