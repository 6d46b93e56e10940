package routing

import "time"

// requestHopCount is the forwarding budget of a new seqno request.
const requestHopCount = 127

// handleRequest processes a seqno request from nb (RFC 8966 §3.8.1.2).
func (e *Engine) handleRequest(t time.Duration, nb *neighbour, en entry) {
	if en.origin == e.cfg.Self {
		if seqnoLess(e.seqno, en.seqno) && !e.raiseSelf(t, 0, en.seqno, false) {
			return // answered by the raise at the end of the gap
		}
		e.reply(t, nb, nil)
		return
	}
	if e.cfg.Leaf {
		return
	}
	o := e.originOf(&en)
	if o == nil {
		return
	}
	if o.rtReachable && o.selSeq && !seqnoLess(o.rtSeqno, en.seqno) {
		e.reply(t, nb, o)
		return
	}
	if en.hopcnt < 2 {
		return
	}
	// No request reaches further than one a node starts: a hop count
	// above it would pass as reaching further than the request forwarded
	// last (below), each one larger than the one before.
	en.hopcnt = min(en.hopcnt, requestHopCount)
	target := e.requestTarget(o, nb)
	if target == nil {
		return
	}
	e.noteAsker(o, nb, en.seqno) // the answer goes to nb at once
	x := e.ext(o)
	if x.fwdValid && x.fwdHop >= en.hopcnt && (!seqnoLess(x.fwdTop, en.seqno) || x.fwdBy == nb) && t < x.fwdAt+e.fwdRepeat() {
		// Covered by the one forwarded last (its answer goes to nb as
		// well), or nb's own again: a neighbour asking for a newer seqno
		// each time had each request carried to the origin, hop by hop,
		// 20 times a second (TestAttackChasedRequestsTravelToEveryOrigin).
		return
	}
	if t < x.winAt+e.fwdWindow() && x.winN >= fwdPerWindow && (!x.fwdValid || x.fwdHop >= en.hopcnt) {
		// Two forwarded in this window already, and this one reaches no
		// further: it goes on at the end of a window of its own
		// (holdRequest), whoever asks. A neighbour asking for a newer
		// seqno through its links in turn had each request carried on
		// where the paths meet, every other asker's going on at once
		// (TestAttackChasedRequestsThroughLinksInTurn).
		e.holdRequest(t, o, x, nb, en)
		return
	}
	if !e.holdUntil(t, nb.forwarded, e.nameOf(o)) {
		return // nb already had a request forwarded for o recently
	}
	e.forwardRequest(t, o, x, nb, target, en)
}

// requestTarget returns the neighbour a request for o from nb goes on
// to: the selected route's, else the one of the best route not through
// nb; nil if none.
func (e *Engine) requestTarget(o *origin, nb *neighbour) *neighbour {
	if target := e.sel(o); target != nil && target != nb {
		return target
	}
	var target *neighbour
	var best Metric
	rs := e.routes(o)
	for i := range rs {
		r := &rs[i]
		if m := e.total(r); e.nbOf(r) != nb && m < e.cfg.Infinity && (target == nil || m < best) {
			target, best = e.nbOf(r), m
		}
	}
	return target
}

// fwdRepeat is how long after forwarding a request for an origin a node
// takes one for no newer seqno, reaching no further, as covered by it:
// four triggered intervals (200 ms by default), less than the first
// retry of a request (handleRequest).
func (e *Engine) fwdRepeat() time.Duration { return 4 * e.cfg.MinTriggeredInterval }

// fwdWindow is the window in which a node forwards at most fwdPerWindow
// requests for an origin at once, unless one reaches further; the others
// wait for the end of a window of their own (handleRequest). It is as
// long as an origin takes between two raises (selfRaiseGap): the second
// request lets a newer seqno asked for within the window reach the
// origin in time for its next raise, and more come no faster than the
// origin answers them.
func (e *Engine) fwdWindow() time.Duration { return e.selfRaiseGap() }

// fwdPerWindow is how many requests for an origin a node forwards at
// once per fwdWindow.
const fwdPerWindow = 2

// forwardRequest sends en, by's request for o, on to target: for a while,
// requests for o that reach no further are then covered by it, and it
// counts toward the requests for o forwarded in the window (handleRequest).
func (e *Engine) forwardRequest(t time.Duration, o *origin, x *originExt, by, target *neighbour, en entry) {
	// The first seqno reaching the oldest one asked for answers: a later
	// request for a newer one does not hold back the answer from the
	// neighbours that asked for less (TestAttackHigherAskDelaysAsker).
	if !x.fwdValid || seqnoLess(en.seqno, x.fwdSeqno) {
		x.fwdSeqno = en.seqno
	}
	x.fwdValid, x.fwdTop, x.fwdHop, x.fwdAt, x.fwdBy = true, en.seqno, en.hopcnt, t, by
	if t >= x.winAt+e.fwdWindow() || x.winN == 0 {
		x.winAt, x.winN = t, 0
	}
	x.winN = min(x.winN+1, fwdPerWindow)
	// A request that dies a hop or two on (a neighbour's made-up hop
	// count) neither holds back one that reaches further (above) nor
	// takes its place while it waits to be sent.
	fw := entry{kind: kindRequest, origin: e.nameOf(o), seqno: en.seqno, hopcnt: en.hopcnt - 1}
	if p, ok := target.requests[fw.origin]; ok && p.hopcnt > fw.hopcnt {
		fw = p
	}
	target.requests[fw.origin] = fw
}

// holdRequest keeps en, nb's request for o, to go on one window after it
// came (releaseRequests), together with any other held meanwhile: the
// newest seqno asked for, as far as the farthest reaching. None is lost:
// its asker waits at most a window beyond the two requests forwarded in
// the last, whose answers it gets too (noteAsker).
func (e *Engine) holdRequest(t time.Duration, o *origin, x *originExt, nb *neighbour, en entry) {
	if x.reqHeld {
		if seqnoLess(x.heldSeqno, en.seqno) {
			x.heldSeqno, x.heldBy = en.seqno, nb
		}
		x.heldHop = max(x.heldHop, en.hopcnt)
		return
	}
	x.reqHeld, x.heldSeqno, x.heldHop, x.heldBy = true, en.seqno, en.hopcnt, nb
	// Holds all take the same time, so that the list is in the order of
	// their ends.
	e.reqHolds = append(e.reqHolds, coldHold{at: t + e.fwdWindow(), id: o.id})
}

// releaseRequests forwards the requests held until t that no route or
// request meanwhile answered or carried.
func (e *Engine) releaseRequests(t time.Duration) {
	e.reqHolds = e.releaseDue(e.reqHolds, t, func(o *origin) {
		x := e.ext(o)
		nb, en := x.heldBy, entry{kind: kindRequest, origin: e.nameOf(o), seqno: x.heldSeqno, hopcnt: x.heldHop}
		x.reqHeld, x.heldBy = false, nil
		switch {
		case o.rtReachable && o.selSeq && !seqnoLess(o.rtSeqno, en.seqno):
			return // answered meanwhile
		case x.fwdValid && t < x.fwdAt+e.fwdRepeat() && !seqnoLess(x.fwdTop, en.seqno) && x.fwdHop >= en.hopcnt:
			return // carried meanwhile
		}
		if target := e.requestTarget(o, nb); target != nil {
			e.forwardRequest(t, o, x, nb, target, en)
		}
	})
}

// selfRaiseGap is the least time between two raises of this node's seqno
// on requests: 20 triggered-update intervals (1 s by default).
func (e *Engine) selfRaiseGap() time.Duration { return 20 * e.cfg.MinTriggeredInterval }

// maxSelfJump bounds how far one raise on a request moves this node's
// seqno: requests move it at most 64 a second, so in answerAllGap (64 s),
// for which a node may hold a new seqno alone back from the neighbours
// that did not ask (seqhold.go), it moves at most holdSpan. With 4096 a
// raise, a neighbour asking far ahead once a second carried it half round
// the 16-bit circle in 8 s: a neighbour left out then took the next route
// it was sent for an older one and had no route for 14 s
// (TestAttackHeldSeqnoWrapsForTheOthers). A node that restarted below
// the seqnos its previous life signed still catches up in one raise when
// it issued fewer than 64 since, and at once from any of its own
// attestations.
const maxSelfJump = 1 << 6

// raiseSelf raises this node's seqno toward want and announces it at
// once, or records want for the raise at the end of the gap after the
// last one, and reports whether it raised. A raise costs a signature here
// and a verification at every node, so there is at most one per
// selfRaiseGap, whatever asks: seqno requests, or our own attestations
// of a newer (epoch, seqno) than ours, which anyone who kept them can
// replay. A request raises to the seqno it asks for (modulo 2^16, in our
// epoch), at most maxSelfJump ahead; an attestation of ours (jump)
// raises to (ep, want), one past it, which it proves we signed. A raise
// due for a jump is not replaced by a request.
func (e *Engine) raiseSelf(t time.Duration, ep uint64, want uint16, jump bool) bool {
	if t < e.raiseAt {
		switch {
		case !e.raiseDue,
			jump && (!e.raiseJmp || attNewer(ep, want, e.raiseEp, e.raiseTo)),
			!jump && !e.raiseJmp && seqnoLess(e.raiseTo, want):
			e.raiseTo, e.raiseJmp, e.raiseEp = want, jump, ep
		}
		e.raiseDue = true
		return false
	}
	if jump {
		e.selfEpoch, e.seqno = ep, want
	} else {
		if want-e.seqno > maxSelfJump {
			want = e.seqno + maxSelfJump
		}
		e.advanceSelf(want)
	}
	e.raiseDue, e.raiseAt = false, t+e.selfRaiseGap()
	e.stats.SeqnoBumps++
	e.triggerAll(nil, true)
	return true
}

// advanceSelf moves our seqno forward to s (modulo 2^16, less than half
// the circle), into the next epoch when it passes 0, so that the
// attestations we sign are ordered as we sign them.
func (e *Engine) advanceSelf(s uint16) {
	if s < e.seqno {
		e.selfEpoch++
	}
	e.seqno = s
}

// attNewer reports whether an attestation of (ep1, s1) is newer than one
// of (ep2, s2): of a later epoch, or of the same and a larger seqno.
// Unlike route seqnos, attestations are not compared modulo 2^16: an
// origin moves to the next epoch when its seqno passes 0 (advanceSelf),
// so the order is total and an attestation it signed earlier never reads
// as newer than a later one. Two of epoch 0 are the exception: an origin
// of the release before signs no epoch (version 1, read as 0) and lets
// its seqno pass 0 in place, so those compare modulo 2^16 as that
// release compared them (otherwise such an origin's attestations after
// its seqno passed 0 would read as older than the one held, forever).
// An old attestation of epoch 0 can thus still read as newer than the
// current one: the order protects origins that sign an epoch.
func attNewer(ep1 uint64, s1 uint16, ep2 uint64, s2 uint16) bool {
	if ep1 == 0 && ep2 == 0 {
		return seqnoLess(s2, s1)
	}
	return ep1 > ep2 || ep1 == ep2 && s1 > s2
}

// reply queues an update for o (nil: Self) to nb, sent without rate limiting, at
// most once per origin per MinTriggeredInterval: a neighbour repeating
// requests cannot draw updates faster than triggered updates go.
func (e *Engine) reply(t time.Duration, nb *neighbour, o *origin) {
	name := e.cfg.Self
	if o != nil {
		name = e.nameOf(o)
	}
	if !e.holdUntil(t, nb.replied, name) {
		return
	}
	nb.queue(o)
	nb.urgent = true
}

// holdUntil reports whether origin is free in last (nothing recorded within
// MinTriggeredInterval before t) and records t; otherwise it counts a
// refused request. Entries older than the interval are swept when last
// outgrows the table, so last holds at most one entry per held origin.
func (e *Engine) holdUntil(t time.Duration, last map[string]time.Duration, origin string) bool {
	if at, ok := last[origin]; ok && t < at+e.cfg.MinTriggeredInterval {
		e.stats.RefusedRequests++
		return false
	}
	if len(last) > e.origins.len() {
		for k, at := range last {
			if t >= at+e.cfg.MinTriggeredInterval {
				delete(last, k)
			}
		}
	}
	last[origin] = t
	return true
}

// betterUnfeasible returns the neighbours holding finite routes for o that
// we cannot use because they are unfeasible, but would select otherwise,
// and the neighbour of the route selected if it is kept unfeasible
// (keepable).
func (e *Engine) betterUnfeasible(o *origin) []*neighbour {
	var out []*neighbour
	rs := e.routes(o)
	for i := range rs {
		r := &rs[i]
		m := e.total(r)
		if m < e.cfg.Infinity && !e.usableFinite(o, r) &&
			(!o.rtReachable || m < o.rtMetric || r.slot == o.selSlot) {
			out = append(out, e.nbOf(r))
		}
	}
	return out
}

// sendRequest queues a seqno request for o to each of nbs, suppressing
// repeats of the same request until its retry time.
func (e *Engine) sendRequest(t time.Duration, o *origin, seqno uint16, nbs []*neighbour) {
	x := e.ext(o)
	if x.reqActive && x.reqSeqno == seqno && t < x.reqRetry {
		return
	}
	if x.reqActive && x.reqSeqno == seqno {
		x.reqBackoff = min(2*x.reqBackoff, e.cfg.UpdateInterval)
	} else {
		x.reqBackoff = 4 * e.cfg.MinTriggeredInterval
	}
	x.reqActive, x.reqSeqno, x.reqRetry = true, seqno, t+x.reqBackoff
	e.watchOrigin(o, x.reqRetry)
	for _, nb := range nbs {
		nb.requests[e.nameOf(o)] = entry{kind: kindRequest, origin: e.nameOf(o), seqno: seqno, hopcnt: requestHopCount}
	}
}

// retryRequest resends an unanswered request while some neighbour still
// holds a route we cannot use.
func (e *Engine) retryRequest(t time.Duration, o *origin) {
	x := e.xOf(o)
	if x == nil || !x.reqActive || t < x.reqRetry {
		return
	}
	if e.drains > 0 {
		if e.retryDrain(t, o) {
			return
		}
		x = e.xOf(o) // reselect may have moved it
	}
	nbs := e.betterUnfeasible(o)
	if len(nbs) == 0 {
		x.reqActive = false
		return
	}
	if o.rtReachable && o.selSeq && !seqnoLess(o.rtSeqno, x.reqSeqno) && !e.olderThan(o, x.reqSeqno) {
		// Answered through the route selected, while routes that would
		// be better stay unfeasible at the seqno asked for: ask one
		// past the seqno of our feasibility distance.
		e.sendRequest(t, o, o.fdSeqno+1, nbs)
		return
	}
	// Unanswered, or answered through the route selected only while
	// routes that would be better stay older: their neighbours did not
	// get the answer (a new seqno alone goes only to the neighbours that
	// asked for it, seqhold.go), and any node on their way that holds it
	// answers.
	e.sendRequest(t, o, x.reqSeqno, nbs)
}

// olderThan reports whether one of the unfeasible routes of o that would
// be better than the one selected (betterUnfeasible) carries a seqno older
// than seqno.
func (e *Engine) olderThan(o *origin, seqno uint16) bool {
	rs := e.routes(o)
	for i := range rs {
		r := &rs[i]
		if m := e.total(r); m < e.cfg.Infinity && !e.usableFinite(o, r) && (!o.rtReachable || m < o.rtMetric || r.slot == o.selSlot) && seqnoLess(r.seqno, seqno) {
			return true
		}
	}
	return false
}
