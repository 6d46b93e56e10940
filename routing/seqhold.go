package routing

import "time"

// A new seqno that changes nothing else of a route (the origin raised it,
// on a request or after a restart) is held back from the neighbours that
// did not ask for it (docs/DESIGN.md, "Holding a new seqno alone"): it
// goes at once to the neighbours whose requests for the origin this node
// forwarded, and to every neighbour at most once per origin per
// answerAllGap. Otherwise one neighbour asking for the next seqno of every
// origin once a second made the node send each new seqno, with its
// attestation, to every neighbour: about 240 entries for each request
// entry at a hub of 100 neighbours (TestAttackSeqnoRequestsFanOutFromTheHub).
// The neighbours left out keep the route they hold at its older seqno,
// which summaries describe (advertisedTo), until the route is sent to
// them for another reason.

// answerAllGap is the least time between two sends of a new seqno alone
// of one origin to every neighbour.
const answerAllGap = 64 * time.Second

// seqHold is a neighbour that asked for a newer seqno of an origin
// through us (asked: the answer, a seqno want or newer, goes to it at
// once), or that holds a newer seqno of it from us than the other
// neighbours (told: seqno, at the origin's advertised metric and hops).
// An origin has at most one per neighbour (originExt.holds).
type seqHold struct {
	nb    *neighbour
	seqno uint16
	want  uint16
	asked bool
	told  bool
}

// holdOf returns nb's entry in x.holds, nil if it has none.
func (x *originExt) holdOf(nb *neighbour) *seqHold {
	for i := range x.holds {
		if x.holds[i].nb == nb {
			return &x.holds[i]
		}
	}
	return nil
}

// addHold returns nb's entry in x.holds, adding it if needed: one per
// neighbour, so that x.holds holds at most as many as there are
// neighbours.
func (x *originExt) addHold(nb *neighbour) *seqHold {
	if h := x.holdOf(nb); h != nil {
		return h
	}
	x.holds = append(x.holds, seqHold{nb: nb})
	return &x.holds[len(x.holds)-1]
}

// compactHolds drops the entries that are neither asked nor told.
func (x *originExt) compactHolds() {
	k := 0
	for _, h := range x.holds {
		if h.asked || h.told {
			x.holds[k] = h
			k++
		}
	}
	clear(x.holds[k:])
	x.holds = x.holds[:k]
	if k == 0 {
		x.holds = nil
	}
}

// noteAsker records that nb asked us for seqno want of o, or a newer
// one, which we forward or forwarded: the answer goes to nb at once. A
// request from the selected next hop is not recorded: it is told
// infinity (poison reverse), whatever the seqno.
func (e *Engine) noteAsker(o *origin, nb *neighbour, want uint16) {
	if o.isSel(nb) {
		return
	}
	h := e.ext(o).addHold(nb)
	if !h.asked || seqnoLess(h.want, want) {
		h.want = want
	}
	h.asked = true
}

// allSlot reports whether a new seqno alone of the origin of x may go to
// every neighbour at t (not done within answerAllGap), and if so records
// it.
func (x *originExt) allSlot(t time.Duration) bool {
	if x.allValid && t < x.allAt+answerAllGap {
		return false
	}
	x.allValid, x.allAt = true, t
	return true
}

// answer sends the new seqno of o that answers a request we forwarded:
// to every neighbour at once if its slot is free (allSlot), else to the
// neighbours that asked for it only.
func (e *Engine) answer(t time.Duration, o *origin, x *originExt) {
	if x.allSlot(t) {
		x.promote = true
		e.triggerAll(o, true)
	} else if !e.cfg.Leaf {
		for i := range x.holds {
			if nb := x.holds[i].nb; x.holds[i].asked && (!o.isSel(nb) || o.toldFinite(nb)) {
				nb.queue(o)
				nb.urgent = true
			}
		}
	}
	e.answered(x, o.rtSeqno)
}

// answered forgets the neighbours that asked for o's seqno s or an older
// one: the answer is queued for them. Those that asked for a newer one
// stay, and the first seqno reaching what one of them asked answers
// again (fwdSeqno): when every asker was forgotten at the first answer,
// a neighbour asking for a seqno between the one held and the one
// another asked for had that other wait for its retry, as the newer
// seqno that came next was held back from it
// (TestAttackPartialAnswerDelaysAsker).
func (e *Engine) answered(x *originExt, s uint16) {
	if len(x.holds) == 0 {
		return
	}
	waiting := false
	for i := range x.holds {
		h := &x.holds[i]
		if !h.asked {
			continue
		}
		if !seqnoLess(s, h.want) {
			h.asked = false
			continue
		}
		if !waiting || seqnoLess(h.want, x.fwdSeqno) {
			x.fwdSeqno = h.want
		}
		waiting = true
	}
	if waiting {
		x.fwdValid = true
	}
	x.compactHolds()
}

// holdSpan bounds how far ahead of the seqno advertised to every
// neighbour a seqno held back from them may be: seqnos compare on a
// 16-bit circle, and one half round ahead reads as older. However
// seqnos reach this node (a raise moves an origin by maxSelfJump at
// most, but a neighbour that held seqnos back may send several at once),
// the others fall at most holdSpan behind the route this node sends.
const holdSpan = 1 << 12

// holdSeqno decides, when the route of o sent to nb differs from the
// one advertised to every neighbour (o.adv*) by its seqno alone,
// whether the others get it too (it then becomes the route advertised:
// once per answerAllGap, when apply marked it due to all, or when s is
// holdSpan or more ahead of what they hold), and if not records that nb
// holds seqno s. It reports whether it held.
func (e *Engine) holdSeqno(t time.Duration, o *origin, nb *neighbour, s uint16) bool {
	x := e.ext(o)
	if x.promote || s-o.advSeqno >= holdSpan || x.allSlot(t) {
		x.promote = false
		return false
	}
	h := x.addHold(nb)
	h.told, h.seqno = true, s
	return true
}

// moved forgets, when the route advertised to every neighbour moves,
// which neighbours held a newer seqno: they get the new route too.
func (e *Engine) moved(o *origin) {
	x := e.xOf(o)
	if x == nil {
		return
	}
	x.promote = false
	if len(x.holds) == 0 {
		return
	}
	for i := range x.holds {
		x.holds[i].told = false
	}
	x.compactHolds()
}

// heldNewer reports whether some neighbour holds a newer seqno of o
// from us than the route advertised to every neighbour.
func (e *Engine) heldNewer(o *origin) bool {
	if x := e.xOf(o); x != nil {
		for i := range x.holds {
			if x.holds[i].told {
				return true
			}
		}
	}
	return false
}

// untold records that nb holds o's route as advertised to every
// neighbour (or none).
func (e *Engine) untold(o *origin, nb *neighbour) {
	if x := e.xOf(o); x != nil && len(x.holds) > 0 {
		if h := x.holdOf(nb); h != nil && h.told {
			h.told = false
			x.compactHolds()
		}
	}
}

// forgetHolds drops nb, whose link went down, from o's entries (and as
// the asker of the request forwarded last or held, so that o does not
// keep it).
func (e *Engine) forgetHolds(o *origin, nb *neighbour) {
	x := e.xOf(o)
	if x == nil {
		return
	}
	if x.fwdBy == nb {
		x.fwdBy = nil
	}
	if x.heldBy == nb {
		x.heldBy = nil
	}
	if len(x.holds) > 0 {
		if h := x.holdOf(nb); h != nil {
			h.asked, h.told = false, false
			x.compactHolds()
		}
	}
}

// dropHolds forgets every entry of o (unreachable: nothing is held).
func (e *Engine) dropHolds(o *origin) {
	if x := e.xOf(o); x != nil {
		x.holds, x.promote = nil, false
	}
}
