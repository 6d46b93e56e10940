package routing

import (
	"math/bits"
	"time"
)

// scheduleHousekeep records that housekeeping is due at at, unless it is
// due sooner. at is rounded up to a multiple of 4 triggered-update
// intervals (200 ms by default), so that routes expire up to that much
// late and the walks of the table they cost come at most 5 times a
// second: each route's expiry was a walk of its own, and a neighbour
// refreshing one route a message, each another, spread them so that
// every message cost a walk (2,288 walks of 4,000 origins in 30 s for
// 8,573 messages, against 2 for the same messages about one origin:
// TestAttackSpreadRefreshesWalkTheTable).
func (e *Engine) scheduleHousekeep(at time.Duration) {
	if g := 4 * e.cfg.MinTriggeredInterval; g > 0 {
		at = (at + g - 1) / g * g
	}
	if !e.hkValid || at < e.hkAt {
		e.hkValid, e.hkAt = true, at
	}
}

// housekeep expires stale routes and forgets destinations that have been
// unreachable for two expiry periods. It then records when it is next
// needed.
func (e *Engine) housekeep(t time.Duration) {
	e.hkValid = false
	for _, name := range e.sortedOrigins() {
		o := e.origins.get(name)
		expired := false
		for i := 0; i < len(e.routes(o)); {
			r := &e.routes(o)[i]
			if r.expiring() && r.expiredAt(t) {
				e.removeAt(o, i)
				expired = true
				continue
			}
			if r.expiring() {
				e.scheduleHousekeep(r.expiresAt(t))
			}
			i++
		}
		if expired {
			e.reselect(t, o)
		}
		if !o.rtReachable && len(e.routes(o)) == 0 {
			gc := o.changedAt + 2*e.cfg.RouteExpiry
			if t >= gc {
				e.removeOrigin(o)
				continue
			}
			e.scheduleHousekeep(gc)
		}
	}
}

// removeOrigin takes o out of the table. Its id goes to the next new
// entry once no pending list holds it (zombies): a removed entry still in
// a pending or watch list is skipped before anything of its side is read.
func (e *Engine) removeOrigin(o *origin) {
	e.origins.remove(e.origins.hash(e.nameOf(o)), o)
	if o.rtReachable {
		e.reachable--
	}
	e.unhold(o)
	e.forgetAttSent(o)
	o.removed, o.hasExt = true, false
	e.originOrder = nil
	if n := e.pendHolders(o); n > 0 {
		if e.zombies == nil {
			e.zombies = make(map[uint32]int)
		}
		e.zombies[o.id] = n
	} else {
		e.releaseID(o.id)
	}
}

// pendHolders returns the number of pending lists that hold o.
func (e *Engine) pendHolders(o *origin) int {
	n := bits.OnesCount32(o.pend)
	for nb := range e.farNeighbours() {
		if _, ok := nb.pendSet[o.id]; ok {
			n++
		}
	}
	return n
}

// unqueued records that a pending list let go of removed entry o.
func (e *Engine) unqueued(o *origin) {
	if e.zombies[o.id]--; e.zombies[o.id] == 0 {
		delete(e.zombies, o.id)
		e.releaseID(o.id)
	}
}

// releaseID releases the side entry of a removed entry and gives its id
// to the next new entry.
func (e *Engine) releaseID(id uint32) {
	e.side.release(id)
	e.freeIDs = append(e.freeIDs, id)
}

// watchOrigin schedules checkWatched for o at or before at.
func (e *Engine) watchOrigin(o *origin, at time.Duration) {
	if x := e.ext(o); !x.watched {
		x.watched = true
		e.watch = append(e.watch, o)
	}
	if !e.watchValid || at < e.watchAt {
		e.watchValid, e.watchAt = true, at
	}
}

// checkWatched takes candidate next hops that stayed better for an update
// interval and retries seqno requests, for the watched origins only, in
// the order they were first watched.
func (e *Engine) checkWatched(t time.Duration) {
	e.watchValid = false
	list := e.watch
	e.watch = nil
	for _, o := range list {
		if !o.removed {
			e.xOf(o).watched = false // watched origins have their ext
		}
	}
	for _, o := range list {
		if o.removed {
			continue
		}
		x := e.xOf(o)
		if x.beaten && t >= x.beatenSince+e.cfg.UpdateInterval {
			e.reselect(t, o)
		}
		e.retryRequest(t, o)
		if x.beaten {
			e.watchOrigin(o, x.beatenSince+e.cfg.UpdateInterval)
		}
		if x.reqActive {
			e.watchOrigin(o, x.reqRetry)
		}
	}
}
