package node

import (
	"time"

	"github.com/circuitmesh/circuitmesh/node/topology"
)

// A link the policy replaces is drained before it closes (make before
// break on both sides, routing/drain.go): routing moves the routes through
// it to other next hops, here and at the peer, which it tells, and the
// link closes once nothing of this node routes through it and drainMin
// has passed. A drain lasts at most drainMax: then the link closes if no
// route of this node depends on it alone (the rule without a drain,
// Link.Stranded), and is otherwise kept, the drain cancelled and the peer
// not drained again for drainHold. A drain is cancelled as soon as the
// policy no longer drops the link (a member became unreachable, it is a
// bridge again, a closer neighbour went), and the peer is then not
// drained again for drainHold either.
const (
	drainMin  = 2 * time.Second
	drainMax  = 5 * time.Second
	drainHold = 30 * time.Second
)

// drains is the drain state of the policy's links, owned by the policy
// step (discovery.stepMu). Its tables hold at most one entry per link
// (drainsFor drops those of links gone) and per peer held.
type drains struct {
	since map[string]time.Time // peer → when its link's drain started
	held  map[string]time.Time // peer → until when it is not drained again
}

// drain starts or continues the drain of the link to peer in routing and
// returns how many destinations it still routes through it.
func (r *router) drain(peer string) int {
	n := 0
	r.apply(func(now time.Time) { n = r.eng.Drain(now, peer) })
	return n
}

// undrain cancels the drain of the link to peer in routing.
func (r *router) undrain(peer string) {
	r.apply(func(now time.Time) { r.eng.Undrain(now, peer) })
}

// policyStranded is the policy's Link.Stranded: the count of stranded
// only for the links held after a drain that could not end or was
// cancelled (drainHold), 0 for the others. A link whose routes depend on it alone is drained like
// any other: the drain asks their origins for the newer seqnos that make
// another next hop feasible, moves them, and closes the link only once
// nothing routes through it, or at drainMax if no route depends on it
// alone (drainDrops, which is given the counts themselves). The policy
// once kept such a link until a newer seqno came for some other reason,
// and routing sends a new seqno alone to the neighbours that did not ask
// for it at most once a minute (routing's answerAllGap): the replacements
// of a mesh that had just joined then waited a minute and came together,
// each freeing a slot that let another waiting one through, about 200
// link changes in a few seconds at 100 nodes (TestStrandedLinkIsDrained).
// A held link keeps its count, at least 1 until its hold ends also once
// nothing depends on it alone, so that the policy replaces another link
// meanwhile rather than asking again for the one drainDrops will not
// drop: the policy drops one link a step, and a held link it dropped at
// every step kept the node's other replacements waiting out the hold
// (TestHeldLinkLetsOthersBeReplaced).
func (d *drains) policyStranded(strand map[string]int, now time.Time) map[string]int {
	out := make(map[string]int, len(d.held))
	for peer, until := range d.held {
		if now.Before(until) {
			out[peer] = max(strand[peer], 1)
		}
	}
	return out
}

// draining reports whether the link to peer is being drained for the
// policy's replacement (topology.Link.Replacing).
func (d *drains) draining(peer string) bool {
	_, ok := d.since[peer]
	return ok
}

// drainDrops applies the policy's drops: a replaced link is drained first
// and closed when its drain is done (close is called for it then, as
// for every other drop at once); drains of links the policy no longer
// drops are cancelled. stranded is the links' Link.Stranded before the
// drain's override; linked says which peers still have a link.
func (d *drains) drainDrops(r drainRouter, now time.Time, plan []topology.Drop, stranded map[string]int, linked func(string) bool, close func(topology.Drop)) {
	if d.since == nil {
		d.since, d.held = map[string]time.Time{}, map[string]time.Time{}
	}
	for peer, until := range d.held {
		if !now.Before(until) || !linked(peer) {
			delete(d.held, peer)
		}
	}
	dropped := map[string]bool{}
	for _, dr := range plan {
		if dr.Why != topology.WhyReplace {
			close(dr)
			continue
		}
		if _, ok := d.held[dr.Peer]; ok {
			continue // its last drain did not end: kept for now
		}
		dropped[dr.Peer] = true
		start, ok := d.since[dr.Peer]
		if !ok {
			d.since[dr.Peer] = now
			r.drain(dr.Peer)
			continue
		}
		left, age := r.drain(dr.Peer), now.Sub(start)
		switch {
		case left == 0 && age >= drainMin, age >= drainMax && stranded[dr.Peer] == 0:
			delete(d.since, dr.Peer)
			close(dr)
		case age >= drainMax:
			delete(d.since, dr.Peer)
			d.held[dr.Peer] = now.Add(drainHold)
			r.undrain(dr.Peer)
		}
	}
	for peer := range d.since {
		if !dropped[peer] {
			delete(d.since, peer)
			if linked(peer) {
				// Held as after drainMax: a policy that drops the link
				// again at the next step must not start a drain (and
				// its seqno requests) at every other step.
				d.held[peer] = now.Add(drainHold)
				r.undrain(peer)
			}
		}
	}
}

// drainRouter is what a drain needs of routing (router; a fake in tests).
type drainRouter interface {
	drain(peer string) int
	undrain(peer string)
}
