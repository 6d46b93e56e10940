package routing

import "time"

// Draining a link moves the routes that use it to other next hops before
// it closes, on both of its sides and at the nodes behind them (make
// before break). It uses Babel's own means (RFC 8966): seqno requests, and the rule
// that a route with a newer seqno is feasible whatever its metric.
//
// A drained neighbour's routes stay usable, as a last resort: a route
// through it is selected only while no other neighbour offers a usable
// one. A route selected through it moves to another next hop at once
// when that does not raise the metric this node advertises, or when the
// other route carries a seqno newer than any this node advertised.
// Otherwise it stays, and this node asks the origin for a newer seqno
// (through every neighbour with a finite route, the drained one
// included). Once the route through the drain carries a seqno newer
// than any this node advertised, this node advertises it with
// drainPenalty added: the nodes behind it accept the update (its seqno is
// newer) and, finding their other routes better, ask for the seqno that
// makes them feasible and move, and this node's own other routes become
// feasible against the penalised metric and take over. No node holds
// an update it cannot accept for its selected route; moving to a longer
// route with the old seqno, or retracting, would leave the nodes behind
// without one until the origin's newer seqno reached them. Nodes further
// away, which know nothing of the drain, keep the penalised route with
// the newer seqno rather than move to one at the old seqno whose metric
// is above what they advertised (reselect), and ask for the newer seqno
// through its neighbour.
//
// The node that drains a link tells its neighbour by retracting its own
// route to itself over that link, an update that carries no new field: a
// neighbour's route to itself stays while the link is up, so a node that
// does not know of drains ignores it, and one that does drains the link
// from its side as well (and takes the update's seqno for the route, as
// from any update of the neighbour about itself), until the neighbour
// advertises itself again. Neither side retracts any route: every route
// stays usable over the link until it closes.

// drainPenalty is what a route through a drained link adds to its
// metric, once its seqno allows (selMetric): a sixteenth of Infinity, so
// that a route through a few drains at once stays finite.
func (e *Engine) drainPenalty() Metric { return e.cfg.DrainPenalty() }

// DrainPenalty is what a route through a drained link adds to its
// metric (Engine.Drain): a sixteenth of Infinity (DefaultInfinity when
// unset). A route's metric at or above it says that the route crosses a
// drain, not how long it is; Lookup reports it so at every node behind
// the drain, as the nodes there cannot tell the penalty from the path.
func (c Config) DrainPenalty() Metric {
	if c.Infinity == 0 {
		return DefaultInfinity / 16
	}
	return c.Infinity / 16
}

// Drain starts draining the link to neighbour, or continues a drain
// already started: it reselects the routes still through it (asking
// again, within the request back-off, for the seqnos that would let them
// move) and returns how many destinations are still routed through it,
// the neighbour itself included. It returns 0 for a neighbour without a
// link.
func (e *Engine) Drain(now time.Time, neighbour string) int {
	t := e.at(now)
	nb, ok := e.nbrs[neighbour]
	if !ok {
		return 0
	}
	if !nb.drainLocal {
		e.markDrain(nb, true, nb.drainPeer)
		// Our own route, retracted to nb, tells it of the drain.
		nb.queue(nil)
		nb.urgent = true
	}
	n := 0
	for _, name := range e.sortedOrigins() {
		if o := e.origins.get(name); o.isSel(nb) {
			e.reselect(t, o)
			if o.isSel(nb) {
				n++
			}
		}
	}
	e.flush(t)
	return n
}

// Undrain ends a drain started by Drain: the neighbour's routes compete
// as any other's again, and it is told our own route again.
func (e *Engine) Undrain(now time.Time, neighbour string) {
	t := e.at(now)
	nb, ok := e.nbrs[neighbour]
	if !ok || !nb.drainLocal {
		return
	}
	e.markDrain(nb, false, nb.drainPeer)
	nb.queue(nil)
	nb.urgent = true
	e.reselectVia(t, nb)
	e.flush(t)
}

// Draining reports whether the link to neighbour is drained by this node
// (Drain) and whether the neighbour drains it from its side.
func (e *Engine) Draining(neighbour string) (local, peer bool) {
	if nb, ok := e.nbrs[neighbour]; ok {
		return nb.drainLocal, nb.drainPeer
	}
	return false, false
}

// peerDrainUpdate takes nb's update about itself, once the certifier
// (if any) covers it: on, a retraction, says nb drains the link to us, a
// finite one that it does not (any more). The retraction is taken as
// nb's route to itself at its seqno (metric 0), as a finite one is.
//
// A drain from nb is taken at most once per UpdateInterval (its end at
// once), and, if it comes less than drainQuiet after the last gap ran
// out, the next one only after twice that gap, up to maxDrainGap:
// each one walks the table and draws seqno requests from the origins
// behind nb, which raise, and their new seqnos, signed, travel to every
// node behind us with the drain's penalty. A neighbour saying it drains
// its links and, 50 ms later, that it no longer does, every update
// interval, made the mesh check 149 signatures and send 7,564 bytes for
// each entry it sent (TestAttackMemberDrainToggleDrawsMeshWork); an
// honest node drains a peer again no sooner than 30 s after the last
// drain ended (node/discoverydrain.go). A drain refused so is taken from
// nb's next update about itself after the gap; until then nb's routes
// compete as any other's, which they may: they stay usable until the
// link closes.
func (e *Engine) peerDrainUpdate(t time.Duration, nb *neighbour, on bool) {
	if nb.drainPeer == on {
		return
	}
	if on {
		if nb.drainOnce && t < nb.drainAt+nb.drainGap {
			e.stats.DampedDrains++
			return
		}
		if nb.drainOnce && t < nb.drainAt+nb.drainGap+e.drainQuiet() {
			nb.drainGap = min(2*nb.drainGap, maxDrainGap*e.cfg.UpdateInterval)
		} else {
			nb.drainGap = e.cfg.UpdateInterval
		}
		nb.drainOnce, nb.drainAt = true, t
	}
	e.markDrain(nb, nb.drainLocal, on)
	e.reselectVia(t, nb)
}

// drainQuiet is how long after the gap since a neighbour's last drain ran
// out its next drain still doubles the gap before the one after, up to
// maxDrainGap update intervals (about 4 min by default); one later finds
// the gap at UpdateInterval again. It is 6 update intervals (24 s by
// default), and never so long that an honest node's next drain of a
// peer, honestRedrain or more after the last, doubles the gap: those are
// all taken (TestPeerDrainEvery30sTaken), whatever the UpdateInterval up
// to honestRedrain.
func (e *Engine) drainQuiet() time.Duration {
	return max(min(6*e.cfg.UpdateInterval, honestRedrain-e.cfg.UpdateInterval), 0)
}

// maxDrainGap is the longest gap between two drains taken from a
// neighbour, in update intervals; honestRedrain is the least time after
// its last drain of a peer that a node drains it again
// (node/discoverydrain.go: drainHold after the drain ended).
const (
	maxDrainGap   = 64
	honestRedrain = 30 * time.Second
)

// markDrain sets nb's drain flags, keeping the count of drained
// neighbours (Engine.drains) that lets selection skip the drain's rules
// while there is none.
func (e *Engine) markDrain(nb *neighbour, local, peer bool) {
	was := nb.drainLocal || nb.drainPeer
	nb.drainLocal, nb.drainPeer = local, peer
	switch is := local || peer; {
	case is && !was:
		e.drains++
	case was && !is:
		e.drains--
	}
}

// forgetDrain drops nb's drain as its link goes down.
func (e *Engine) forgetDrain(nb *neighbour) { e.markDrain(nb, false, false) }

// reselectVia reselects every origin with a route through nb.
func (e *Engine) reselectVia(t time.Duration, nb *neighbour) {
	for _, name := range e.sortedOrigins() {
		if o := e.origins.get(name); e.find(o, nb) >= 0 {
			e.reselect(t, o)
		}
	}
}

// reselectDrain is reselect for an origin with a route through a drained
// neighbour (see the top of this file). It reports false, having changed
// nothing, when o has no such route: reselect then selects as usual.
func (e *Engine) reselectDrain(t time.Duration, o *origin) bool {
	var cur, alt, last *routeEntry // selected; best usable not drained; best usable drained
	var altM, lastM Metric
	drained, others := false, false // some route through a drained neighbour; a finite one not
	rs := e.routes(o)
	for i := range rs {
		r := &rs[i]
		nb := e.nbOf(r)
		isDrained := nb.drainLocal || nb.drainPeer
		drained = drained || isDrained
		m := e.total(r)
		if m >= e.cfg.Infinity {
			continue
		}
		others = others || !isDrained
		if !e.usableFinite(o, r) {
			continue
		}
		if o.rtReachable && r.slot == o.selSlot {
			cur = r
		}
		if isDrained {
			if last == nil || m < lastM || (m == lastM && nb.name < e.nbOf(last).name) {
				last, lastM = r, m
			}
		} else if alt == nil || m < altM || (m == altM && nb.name < e.nbOf(alt).name) {
			alt, altM = r, m
		}
	}
	if !drained {
		return false
	}
	e.dropBeaten(o)
	curDrained := cur != nil && (e.nbOf(cur).drainLocal || e.nbOf(cur).drainPeer)
	switch {
	case cur != nil && !curDrained:
		// Selected away from the drain already: it moves only to a
		// route clearly better, and never back into the drain.
		if alt != cur && uint64(altM)+uint64(e.cfg.Hysteresis) < uint64(e.total(cur)) {
			cur = alt
		}
		e.apply(t, o, cur)
		return true
	case alt != nil && (cur == nil || e.safeMove(o, alt, altM)):
		e.apply(t, o, alt)
		return true
	case cur == nil:
		if last == nil {
			return false // nothing usable: reselect retracts and asks as usual
		}
		cur = last
	}
	// Through the drain: stay, and ask the origin for the seqno that
	// lets the route carry the penalty (selMetric), and so another
	// route take over, here and behind.
	// (Once it carries the penalty, a route not drained that is still
	// not feasible against it needs a newer seqno again.)
	e.apply(t, o, cur)
	if e.selMetric(o, cur) == e.total(cur) || alt != nil || others {
		e.askPastDrain(t, o)
	}
	return true
}

// safeMove reports whether moving o's route to r (of total metric m)
// keeps it feasible for the nodes that route through this one: r
// carries the seqno this node advertised last with a metric no higher
// than the least it advertised with it (its feasibility distance, which
// every node behind it holds a route above), or a newer seqno; or r
// carries the seqno of the route every neighbour holds from this node
// (no newer one held from the others, seqhold.go) with a metric no
// higher than that route's, which leaves no node behind worse off than
// with the route it holds. The metric selected now is no bound: it may
// not have been advertised. Without the last case a node whose route
// took a newer seqno alone (not sent on) kept a longer route for good
// once the route at the seqno sent became the shorter one, above its
// feasibility distance: the seqno request then sent through the shorter
// route's neighbour ends where a node holds the newer seqno on a route
// it does not select (TestShorterRouteAtSeqnoHeldTaken).
func (e *Engine) safeMove(o *origin, r *routeEntry, m Metric) bool {
	if !r.hasSeqno() {
		return !o.advertised // a fresh neighbour's own route, nothing to keep feasible
	}
	if !o.fdValid || seqnoLess(o.fdSeqno, r.seqno) {
		return true
	}
	if r.seqno == o.fdSeqno && m <= o.fdMetric {
		return true
	}
	return o.advertised && r.seqno == o.advSeqno && m <= o.advMetric && !e.heldNewer(o)
}

// askPastDrain asks the neighbours that hold a finite route to o for a
// seqno newer than any this node advertised.
func (e *Engine) askPastDrain(t time.Duration, o *origin) {
	var nbs []*neighbour
	rs := e.routes(o)
	for i := range rs {
		if r := &rs[i]; e.total(r) < e.cfg.Infinity {
			nbs = append(nbs, e.nbOf(r))
		}
	}
	// The least seqno that does (RFC 8966 §3.8.2.1): a neighbour that
	// holds it answers at once, even when the route through the drain
	// carries a newer one that was not advertised.
	seq := o.rtSeqno + 1
	if o.fdValid {
		seq = o.fdSeqno + 1
	}
	e.sendRequest(t, o, seq, nbs)
}

// selMetric is the metric of o's route when r is selected: its total,
// plus drainPenalty through a drained neighbour once r's seqno is newer
// than any this node advertised for o (or was advertised with the
// penalty already), so that the nodes behind accept it.
func (e *Engine) selMetric(o *origin, r *routeEntry) Metric {
	m := e.total(r)
	if e.drains == 0 {
		return m
	}
	nb := e.nbOf(r)
	if !nb.drainLocal && !nb.drainPeer || !r.hasSeqno() || m >= e.cfg.Infinity {
		return m
	}
	p := e.drainPenalty()
	if !o.fdValid || seqnoLess(o.fdSeqno, r.seqno) || r.seqno == o.fdSeqno && o.fdMetric >= p {
		return min(m+p, e.cfg.Infinity-1)
	}
	return m
}

// retryDrain is retryRequest for an origin selected through a drained
// neighbour: reselect asks again (askPastDrain) as long as it stays. It
// reports false when reselect sent no request (the route moved, or there
// was nothing to ask for): retryRequest then retries or ends the request
// as usual, so that a request in progress never keeps a retry time in
// the past (the caller's tick loop would spin).
func (e *Engine) retryDrain(t time.Duration, o *origin) bool {
	nb := e.sel(o)
	if nb == nil || !nb.drainLocal && !nb.drainPeer {
		return false
	}
	e.reselect(t, o)
	x := e.xOf(o)
	return x == nil || !x.reqActive || t < x.reqRetry
}
