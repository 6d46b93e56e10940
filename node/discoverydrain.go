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

// drainingStranded is the policy's Link.Stranded for the links being
// drained: 0, as their routes are moving on purpose (the drain checks
// them before it closes the link); the others' counts are kept.
func (d *drains) drainingStranded(strand map[string]int) map[string]int {
	if len(d.since) == 0 {
		return strand
	}
	out := make(map[string]int, len(strand))
	for peer, n := range strand {
		if _, ok := d.since[peer]; !ok {
			out[peer] = n
		}
	}
	return out
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
