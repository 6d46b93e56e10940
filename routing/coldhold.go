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
	k := 0
	for ; k < len(e.coldHolds) && e.coldHolds[k].at <= t; k++ {
		o := e.byID(e.coldHolds[k].id)
		o.coldHeld = false
		if o.advertisable() {
			e.triggerAll(o, false)
		}
	}
	if k == 0 {
		return
	}
	n := copy(e.coldHolds, e.coldHolds[k:])
	e.coldHolds = e.coldHolds[:n]
	if n == 0 && cap(e.coldHolds) > maxKeptPending {
		e.coldHolds = nil // grown by a cold start that is over: let it go
	}
}

// unhold drops o, which leaves the table, from the held announcements.
func (e *Engine) unhold(o *origin) {
	if !o.coldHeld {
		return
	}
	o.coldHeld = false
	for i, h := range e.coldHolds {
		if h.id == o.id {
			e.coldHolds = append(e.coldHolds[:i], e.coldHolds[i+1:]...)
			return
		}
	}
}
