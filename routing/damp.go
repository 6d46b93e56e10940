package routing

import (
	"cmp"
	"slices"
	"time"
)

// Damping of improvements that do not hold (docs/PROTOCOL.md §2.3,
// Feasibility). Sending a route lowers the feasibility distance to what
// was sent, and routes no better than it are unfeasible from then on. A
// neighbour that offers a short route, has it sent on, and takes it back
// leaves the routes the others offer unfeasible until the origin issues a
// newer seqno (at most once a second, selfRaiseGap): the node has no
// route meanwhile, nor has any node behind it. Done again at each new
// seqno, that kept a node off an origin nearly all the time while an
// honest path was up (TestAttackFlapLieBlackHolesHonestPath).
//
// When the route selected is lost (retracted, expired, or its metric
// risen past what keeps it; not with this node's own link to its
// neighbour, which the neighbour did not send) while another neighbour
// offers a route that is unfeasible and better than what remains, less
// than dampSettle after the feasibility distance moved, the neighbour
// whose route was lost is marked for that origin. (Counting losses with
// the link, an honest link going down and up every few seconds damped
// its neighbour, and nodes behind kept a longer route for up to half a
// minute after the flapping stopped: TestHonestFlapThenSettle.) Honest routing does this
// too, once for a neighbour and an origin (a neighbour that switched
// to a path through this node, in a cold start or after a death), and
// a first mark changes nothing. A second one within the mark's life
// damps the neighbour's improvements of that origin: a route through
// it selected with a lower metric than the one last sent is sent at the
// metric last sent (the floor) for the mark's gap; the metric selected
// (Lookup, forwarding) is the route's own. Sending a higher metric than
// the route's keeps loop freedom: the feasibility distance moves only
// to what is sent, never below the metric of the route through the
// next hop, which stays above that neighbour's own distance. The routes
// that were feasible before the improvement stay so, and take over if
// it is taken back. A damped neighbour is marked again whenever its
// route selected is lost leaving such a hole, however long after the
// distance moved, or lost while its floor holds; each mark doubles the
// gap, and a mark not renewed for its life lapses.

// dampMark records the last time (at) a route selected from the
// neighbour named nb was lost as above, and for how long its
// improvements of the origin are held (gap; 0 after a first mark: not
// damped).
type dampMark struct {
	nb  string
	at  time.Duration
	gap time.Duration
}

// The times of damping are counted in gaps between two raises of an
// origin's seqno (selfRaiseGap, 1 s by default), the time a node left
// without a feasible route waits at most for a newer seqno: a loss
// marks its neighbour up to 4 of them after the feasibility distance
// moved (dampSettle); a second mark holds improvements for one
// (dampFirstGap), each further one doubles that, up to 32 (dampMaxGap);
// a mark lasts 64 of them after it was last set (dampLife).
func (e *Engine) dampSettle() time.Duration   { return 4 * e.selfRaiseGap() }
func (e *Engine) dampFirstGap() time.Duration { return e.selfRaiseGap() }
func (e *Engine) dampMaxGap() time.Duration   { return 32 * e.selfRaiseGap() }
func (e *Engine) dampLife() time.Duration     { return 64 * e.selfRaiseGap() }

// markOf returns the mark of neighbour nb for x's origin that lasts at
// t, or nil.
func (e *Engine) markOf(x *originExt, nb string, t time.Duration) *dampMark {
	for i := range x.marks {
		if m := &x.marks[i]; m.nb == nb && t < m.at+e.dampLife() {
			return m
		}
	}
	return nil
}

// damped reports whether neighbour nb's improvements of x's origin are
// damped at t: it was marked twice within a mark's life.
func (e *Engine) damped(x *originExt, nb string, t time.Duration) bool {
	m := e.markOf(x, nb, t)
	return m != nil && m.gap > 0
}

// selectedLost is called by reselect when o's selected route (from
// prev) is neither usable nor kept any more, before the next selection
// is applied; hole is whether another neighbour offers an unfeasible
// route better than that one. It marks prev if the route was lost with
// its floor holding, or leaving such a hole soon after the feasibility
// distance moved or with prev damped already.
func (e *Engine) selectedLost(t time.Duration, o *origin, prev *neighbour, hole bool) {
	x := e.xOf(o)
	floored := x != nil && x.floorOn && x.floorSlot == o.selSlot
	if !floored && !hole {
		return
	}
	if e.nbrs[prev.name] != prev {
		// Lost with this node's own link to prev: nothing prev sent.
		return
	}
	recent := o.changedAt > t-e.dampSettle()
	if !floored && !recent && (x == nil || !e.damped(x, prev.name, t)) {
		return
	}
	if x == nil {
		x = e.ext(o)
	}
	if m := e.markOf(x, prev.name, t); m != nil {
		m.at, m.gap = t, min(max(2*m.gap, e.dampFirstGap()), e.dampMaxGap())
		return
	}
	// Marks that lapsed go (at most one per neighbour is kept).
	x.marks = slices.DeleteFunc(x.marks, func(m dampMark) bool { return m.nb == prev.name || t >= m.at+e.dampLife() })
	x.marks = append(x.marks, dampMark{nb: prev.name, at: t})
}

// dampApply keeps o's floor (x is o's ext) as the route r (nil:
// unreachable), of metric metric, is selected at t: the floor ends when
// the selection leaves its neighbour, and starts when a damped
// neighbour's route lowers the metric below the one last sent.
func (e *Engine) dampApply(t time.Duration, o *origin, x *originExt, r *routeEntry, metric Metric) {
	if x.floorOn && (r == nil || r.slot != x.floorSlot) {
		e.dropFloor(o, x)
	}
	if r == nil || x.floorOn || len(x.marks) == 0 || !o.advertised || metric >= o.advMetric {
		return
	}
	nb := e.nbOf(r).name
	if !e.damped(x, nb, t) {
		return
	}
	m := e.markOf(x, nb, t)
	x.floorOn, x.floorSlot, x.floor, x.floorUntil = true, r.slot, o.advMetric, t+m.gap
	e.stats.Damped++
	h := coldHold{at: x.floorUntil, id: o.id}
	i, _ := slices.BinarySearchFunc(e.floorHolds, h, func(a, b coldHold) int { return cmp.Compare(a.at, b.at) })
	for i < len(e.floorHolds) && e.floorHolds[i].at == h.at {
		i++ // holds of the same end in the order they were set
	}
	e.floorHolds = slices.Insert(e.floorHolds, i, h)
}

// dropFloor ends o's floor before its time.
func (e *Engine) dropFloor(o *origin, x *originExt) {
	x.floorOn = false
	e.floorHolds = dropHold(e.floorHolds, o.id)
}

// advertMetric returns the metric o's route is sent at: the metric
// selected, or its floor while one holds.
func (e *Engine) advertMetric(o *origin) Metric {
	// Without a floor anywhere (floorHolds lists them all), no entry's
	// side is read.
	if len(e.floorHolds) > 0 && o.hasExt {
		if x := e.xOf(o); x != nil && x.floorOn && x.floor > o.rtMetric {
			return x.floor
		}
	}
	return o.rtMetric
}

// releaseFloors ends the floors whose time is up by t, sending the
// routes they held at the metric selected.
func (e *Engine) releaseFloors(t time.Duration) {
	e.floorHolds = e.releaseDue(e.floorHolds, t, func(o *origin) {
		x := e.xOf(o)
		x.floorOn = false
		if o.rtReachable && o.advertised && o.advMetric != o.rtMetric {
			e.triggerAll(o, false)
		}
	})
}
