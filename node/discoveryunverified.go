package node

import (
	"errors"
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

// unverifiedEntry is an unverified member memberlist took: when it
// dropped it (zero while it lists it) and the gossip address it listed
// it at.
type unverifiedEntry struct {
	dropped time.Time
	gossip  string
}

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
	d.unverified[name] = unverifiedEntry{}
	return nil
}

// unverifiedListedLocked and unverifiedDroppedLocked note that
// memberlist lists (NotifyJoin, NotifyUpdate) or dropped (NotifyLeave)
// an unverified member. d.mu is held.
func (d *discovery) unverifiedListedLocked(name, gossip string) {
	if _, ok := d.unverified[name]; ok {
		d.unverified[name] = unverifiedEntry{gossip: gossip}
	}
}

func (d *discovery) unverifiedDroppedLocked(name string, now time.Time) {
	if e, ok := d.unverified[name]; ok && e.dropped.IsZero() {
		e.dropped = now
		d.unverified[name] = e
	}
}

// errMovedUnverified is why NotifyAlive refuses an unverified member at
// another gossip address while memberlist still holds its dropped entry.
var errMovedUnverified = errors.New("dropped member claimed at another gossip address without verified metadata")

// movedUnverifiedLocked refuses name's unverified alive message at
// gossip when memberlist dropped name at another address and still
// holds the entry (unverifiedGone): memberlist gives a dead member's
// name to the first alive message at any address (DeadNodeReclaimTime),
// and whoever declares a live member dead could otherwise claim its name
// at an address of its own before the member refutes. Only metadata
// signed by the member's certificate naming the new address moves it
// (a restart at a new address). Without a CA (vouch false) any key
// signs for any name, and memberlist moves a left member at once
// anyway: nothing is refused there. d.mu is held.
func (d *discovery) movedUnverifiedLocked(name, gossip string) error {
	e, ok := d.unverified[name]
	if !d.vouch || !ok || e.dropped.IsZero() || e.gossip == "" || e.gossip == gossip {
		return nil
	}
	return fmt.Errorf("member %s at %s, dropped at %s: %w", name, gossip, e.gossip, errMovedUnverified)
}

// expireUnverified stops counting the unverified members memberlist
// dropped longer than unverifiedGone ago. It runs in the policy step.
func (d *discovery) expireUnverified(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	gone := d.unverifiedGone()
	for name, e := range d.unverified {
		if !e.dropped.IsZero() && now.Sub(e.dropped) >= gone {
			delete(d.unverified, name)
		}
	}
}
