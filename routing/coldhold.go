package routing

import "time"

// Holding a new destination learnt over a costly link (docs/DESIGN.md,
// "Holding a new destination learnt over a costly link"). A destination
// is first heard over the fewest hops, as every link takes one triggered
// batch to cross, and a cheaper path of more hops is heard a batch or
// more later: the node then announces the destination twice, and so does
// every node behind it. A node that hears of a destination it never
// announced over a link costing more than holdCost, while it has a link
// to a router costing holdCost or less (over which a cheaper path may come
// next), announces it one MinTriggeredInterval later, with the best
// route heard meanwhile. A destination it announced before (a route
// lost and found again, a failover, a partition that heals) is never
// held, nor is a retraction, and a node whose links all cost more than
// holdCost holds nothing (there every path is costly, and a hold would
// only slow the first announcement down). Only when a route goes out
// moves: what is sent is what the rules of advert give at that time, so
// loop freedom (the feasibility condition, the feasibility distance set
// as a route is sent) is untouched.

// holdCost is the link cost above which a new destination is held:
// 100 units, a round-trip time of 1 ms.
const holdCost Metric = 100

// coldHold is a destination whose first announcement is held until at.
type coldHold struct {
	at time.Duration
	id uint32
}

// holdsNew reports whether the first announcement of o, which was never
// advertised and whose selected route (reachable) just changed, is held.
func (e *Engine) holdsNew(o *origin) bool {
	if o.advertised || e.sel(o).cost <= holdCost {
		return false
	}
	if !e.cheapValid {
		e.cheap = false
		for _, nb := range e.slots {
			if nb != nil && !nb.leaf && nb.cost <= holdCost {
				e.cheap = true
				break
			}
		}
		e.cheapValid = true
	}
	return e.cheap
}

// holdNew queues o's first announcement for one MinTriggeredInterval
// from t, unless it is queued already (the first hold stands: a better
// route heard meanwhile goes out with it).
func (e *Engine) holdNew(t time.Duration, o *origin) {
	if o.coldHeld {
		return
	}
	o.coldHeld = true
	// Holds all take the same time, so that the list is in the order of
	// their ends.
	e.coldHolds = append(e.coldHolds, coldHold{at: t + e.cfg.MinTriggeredInterval, id: o.id})
}

// releaseHolds triggers the announcements whose hold ended by t.
func (e *Engine) releaseHolds(t time.Duration) {
	e.coldHolds = e.releaseDue(e.coldHolds, t, func(o *origin) {
		o.coldHeld = false
		if o.advertisable() {
			e.triggerAll(o, false)
		}
	})
}

// releaseDue calls release for the origin of each hold in holds (in the
// order of their ends) that ended by t, and returns the holds left.
func (e *Engine) releaseDue(holds []coldHold, t time.Duration, release func(*origin)) []coldHold {
	k := 0
	for ; k < len(holds) && holds[k].at <= t; k++ {
		release(e.byID(holds[k].id))
	}
	if k == 0 {
		return holds
	}
	n := copy(holds, holds[k:])
	holds = holds[:n]
	if n == 0 && cap(holds) > maxKeptPending {
		holds = nil // grown by a cold start that is over: let it go
	}
	return holds
}

// unhold drops o, which leaves the table, from the held announcements,
// hops, requests and floors.
func (e *Engine) unhold(o *origin) {
	if o.coldHeld {
		o.coldHeld = false
		e.coldHolds = dropHold(e.coldHolds, o.id)
	}
	if o.hopsHeld {
		o.hopsHeld = false
		e.hopHolds = dropHold(e.hopHolds, o.id)
	}
	if x := e.xOf(o); x != nil && x.reqHeld {
		x.reqHeld, x.heldBy = false, nil
		e.reqHolds = dropHold(e.reqHolds, o.id)
	}
	if x := e.xOf(o); x != nil && x.floorOn {
		e.dropFloor(o, x)
	}
}

// dropHold removes the hold of id from holds.
func dropHold(holds []coldHold, id uint32) []coldHold {
	for i, h := range holds {
		if h.id == id {
			return append(holds[:i], holds[i+1:]...)
		}
	}
	return holds
}

// hopsGap is the least time between two updates of a route sent at once
// for a change of its hops alone: 20 triggered intervals (1 s by
// default). Hops play no part in feasibility or selection, so such a
// change has no cause to travel faster than a seqno raise: a neighbour
// that flipped the hops of its routes every 50 ms, at the same metric and
// seqno, had every node behind it send each route on at once, about 45
// updates in the mesh for each entry it sent
// (TestAttackHopsFlapFloodsTheMesh).
func (e *Engine) hopsGap() time.Duration { return 20 * e.cfg.MinTriggeredInterval }

// hopsDue reports whether a change of o's hops alone goes out at once. A
// change within hopsGap of the last that did is held for hopsGap, and
// goes out when the hold ends unless a trigger for another cause sent
// the hops meanwhile (releaseHopHolds); further changes meanwhile ride
// with it.
func (e *Engine) hopsDue(t time.Duration, o *origin) bool {
	if o.hopsHeld {
		return false
	}
	x := e.ext(o)
	if t >= x.hopsNext {
		x.hopsNext = t + e.hopsGap()
		return true
	}
	o.hopsHeld = true
	// Holds all take the same time, so that the list is in the order of
	// their ends.
	e.hopHolds = append(e.hopHolds, coldHold{at: t + e.hopsGap(), id: o.id})
	return false
}

// releaseHopHolds sends the hops held until t that are not sent yet.
func (e *Engine) releaseHopHolds(t time.Duration) {
	e.hopHolds = e.releaseDue(e.hopHolds, t, func(o *origin) {
		o.hopsHeld = false
		if o.advertisable() && o.rtReachable && o.advertised && uint32(o.advHops) != min(o.rtHops, 0xffff) {
			e.ext(o).hopsNext = t + e.hopsGap()
			e.triggerAll(o, false)
		}
	})
}
