package node

import (
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// A full member table (maxMembers) refuses new members whose metadata it
// cannot verify: without a gossip key anyone who reaches the gossip port
// can fill it with made-up names. A new member whose signed metadata
// verifies is never refused for that: only certificate holders can sign
// it. Between the two is an honest node whose certificate this node does
// not know yet (it learns certificates from routing, once the node has a
// link into the mesh): its alive message waits here, and the policy step
// takes it once its signature verifies (checkWaiting), as a member
// memberlist does not list (held) that stays while routing reaches it.
//
// The waiting list is bounded (maxWaiting) and first come: an entry
// leaves when it verifies, fails, or after waitingFor; while full, new
// entries are dropped. A stranger who keeps it full of made-up names
// delays such honest joiners until their next alive message finds room.
//
// Held, a member is not gossiped on: memberlist does not list it, and
// takes it only from an alive message that comes again (the member's own
// push-pull, every four minutes with thousands of members listed, to one
// of them at random; or another member's gossip of it, when none lists
// it). So once a waiting member verifies, this node push-pulls with it
// (pushWaiting): the member's state carries its alive message, which
// now verifies, and memberlist takes it and gossips it on. Only metadata
// a certificate signed comes this far, once per waiting entry: a
// stranger's made-up members never do.
const (
	maxWaiting = 1024
	waitingFor = 2 * time.Minute
)

// waitingMember is an alive message refused because the member table was
// full, kept until the member's certificate is known.
type waitingMember struct {
	raw    []byte // the signed metadata
	gossip string // gossip address
	at     time.Time
}

// waitLocked keeps m's signed metadata raw for checkWaiting, if there is
// room. d.mu is held.
func (d *discovery) waitLocked(m *memberlist.Node, raw []byte, now time.Time) {
	if _, ok := d.waiting[m.Name]; ok {
		// First come: a later claim does not replace one that may be
		// the member's own (it is checked, then dropped if it fails).
		return
	}
	if len(d.waiting) >= maxWaiting {
		for name, w := range d.waiting {
			if now.Sub(w.at) >= waitingFor {
				delete(d.waiting, name)
			}
		}
		if len(d.waiting) >= maxWaiting {
			return
		}
	}
	d.waiting[m.Name] = waitingMember{raw: raw, gossip: net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))), at: now}
}

// checkWaiting takes the waiting members whose certificate is now known
// and whose metadata verifies, as held members (expireHeld forgets them
// once routing stops reaching them; memberlist listing them makes them
// ordinary members), and push-pulls with them (pushWaiting). It runs in
// the policy step.
func (d *discovery) checkWaiting(now time.Time) {
	type wait struct {
		name string
		waitingMember
	}
	var todo []wait
	d.mu.Lock()
	for name, w := range d.waiting {
		switch {
		case now.Sub(w.at) >= waitingFor:
			delete(d.waiting, name)
		default:
			todo = append(todo, wait{name, w})
		}
	}
	d.mu.Unlock()
	var taken []string
	for _, w := range todo {
		if _, known := d.memberKey(w.name, now); !known {
			continue
		}
		d.mu.Lock()
		delete(d.waiting, w.name)
		d.mu.Unlock()
		meta, err := parseMeta(w.raw)
		if err != nil {
			continue
		}
		if verified, err := d.checkSigned(w.name, w.raw, meta, now, nil); !verified || err != nil {
			continue
		}
		d.setMember(w.name, w.gossip, w.raw, fromWaiting)
		taken = append(taken, w.gossip)
	}
	if len(taken) > 0 {
		d.pushWaiting(taken)
	}
}

// pushWaiting has pushLoop push-pull with the gossip addresses of the
// waiting members that verified (taken), at most maxWaiting pending.
func (d *discovery) pushWaiting(taken []string) {
	d.mu.Lock()
	for _, a := range taken {
		if len(d.pushTo) < maxWaiting && !slices.Contains(d.pushTo, a) {
			d.pushTo = append(d.pushTo, a)
		}
	}
	d.mu.Unlock()
	select {
	case d.pushc <- struct{}{}:
	default:
	}
}

// pushLoop push-pulls with the addresses pushWaiting left, until the
// node closes.
func (d *discovery) pushLoop() {
	for {
		select {
		case <-d.n.ctx.Done():
			return
		case <-d.pushc:
		}
		d.mu.Lock()
		to := d.pushTo
		d.pushTo = nil
		d.mu.Unlock()
		if len(to) == 0 {
			continue
		}
		if _, err := d.ml.Join(to); err != nil {
			d.n.log.Debug("gossip push-pull with members whose metadata verified", "to", to, "err", err)
		}
	}
}
