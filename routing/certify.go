package routing

import (
	"bytes"
	"reflect"
	"strings"
	"time"
	"unsafe"
)

// handleAttest processes an origin attestation from nb. A valid one newer
// than what we hold becomes the origin's attestation (creating the table
// entry if there is room); an older or identical one is ignored without
// verification, and so is one that a newer one in the same message
// supersedes (supersede). Failed verifications spend nb's failure budget,
// and every check of a held origin's (or our own) newer seqno nb's check
// budget (checkBudget); once either is spent, those attestations of nb are
// dropped unverified. An accepted one drops the routes whose seqno it
// does not cover (dropUncovered); the origin is reselected at the end of
// the message (Receive). It returns the table entry it created, if any.
func (e *Engine) handleAttest(t time.Duration, nb *neighbour, en *entry) *origin {
	if e.cfg.Certifier == nil || en.att == nil {
		return nil
	}
	ep := e.cfg.Certifier.Epoch(en.att)
	if en.origin == e.cfg.Self {
		// A newer (epoch, seqno) of ours that we signed (a previous life
		// whose epoch was larger, its clock ahead of ours): jump past it
		// so our fresh routes are feasible everywhere, at the pace of
		// every raise (raiseSelf).
		ep1, s1 := ep, en.seqno+1
		if s1 == 0 {
			ep1++
		}
		if attNewer(ep, en.seqno, e.selfEpoch, e.seqno) && (!e.raiseDue || !e.raiseJmp || attNewer(ep1, s1, e.raiseEp, e.raiseTo)) {
			if _, ok := e.verify(t, nb, en, ep, e.cfg.Self); ok {
				e.raiseSelf(t, ep1, s1, true)
			}
		}
		return nil
	}
	if e.leafTransit(nb, en.origin) {
		return nil
	}
	o := e.originOf(en)
	if o != nil && o.attValid && !attNewer(ep, en.seqno, e.attOf(o).epoch, o.attSeq) {
		// Not newer than the one held, in the order of (epoch, seqno):
		// an old attestation, replayed, moves nothing.
		e.stats.AttestationsHeld++
		if en.origin == nb.name && attNewer(e.attOf(o).epoch, o.attSeq, ep, en.seqno) {
			e.returnOwnAtt(t, nb)
		}
		if o.attSeq == en.seqno && e.attOf(o).epoch == ep {
			if e.attHeld(nb, o) {
				// Known to be held by nb: mostly sent it by us while
				// nb sent it to us, the copies crossing on the link.
				e.stats.AttestationsCrossed++
			}
			// nb holds what we would send it.
			e.setAttHeldOf(nb, o, true)
		}
		return nil // nothing newer (a different attestation of the same seqno loses)
	}
	if o == nil && e.origins.len() >= e.cfg.MaxRoutes {
		e.stats.RefusedOrigins++
		return nil
	}
	budget := "" // a new origin: MaxRoutes bounds its checks
	if o != nil {
		budget = e.nameOf(o)
	}
	shared, ok := e.verify(t, nb, en, ep, budget)
	if !ok {
		return nil
	}
	if o == nil {
		// The name the process shares, not en.origin, which may alias
		// the message.
		if o = e.addOrigin(shared); o == nil {
			return nil
		}
		// Forgotten unless a route follows.
		o.changedAt = t
		e.scheduleHousekeep(t + 2*e.cfg.RouteExpiry)
	}
	e.side.at(o.id).ref = shared
	o.attSeq, o.attValid, o.attHeld = en.seqno, true, 0
	e.setAttHeldOf(nb, o, true)
	if e.dropUncovered(o) {
		e.reseat = append(e.reseat, o)
	}
	return o
}

// returnOwnAtt makes the attestation we hold of nb's own name due back
// to nb, which just sent an older one of its own, at most once per
// MinTriggeredInterval. No node sends an origin its own attestation
// otherwise (split horizon), and one that restarted with its clock
// behind its previous life's start signs attestations of an older epoch
// than those its previous life left in the mesh: every node would ignore
// them, and its routes would be uncertified once its seqno passed that
// life's, for as long as any node held that life's attestation. Given
// it, the origin jumps past it (handleAttest, raiseSelf: verified, at
// most once a second) and its next attestation is newer than any held.
// Only nb's own link asks for this, for nb's own name: one entry per
// interval, which tells nb nothing the mesh did not already carry.
func (e *Engine) returnOwnAtt(t time.Duration, nb *neighbour) {
	if nb.ownAttSet && t < nb.ownAttAt+e.cfg.MinTriggeredInterval {
		return
	}
	nb.ownAttDue, nb.ownAttSet, nb.ownAttAt = true, true, t
}

// putOwnAtt puts the attestation we hold of nb's own name, if it is due
// back to nb (returnOwnAtt) and we still hold one.
func (e *Engine) putOwnAtt(nb *neighbour) {
	if !nb.ownAttDue {
		return
	}
	nb.ownAttDue = false
	o := e.origins.get(nb.name)
	if o == nil || !o.attValid {
		return
	}
	e.putAttest(nb.name, o.attSeq, e.attOf(o).bytes())
	e.stats.AttestationsOut++
}

// dropUncovered removes the routes of o, learnt from neighbours other
// than o itself, whose seqno o's attestation does not cover, and moves a
// feasibility distance at such a seqno to the attested seqno at infinite
// metric, so that routes at the attested seqno are feasible, as after a
// new seqno. It reports whether it changed anything; the caller then
// reselects. The attestation covers every seqno up to its own, modulo
// 2^16: one the origin's checked seqno moved more than half the circle
// past compares newer than it, so that a route at it (which no checked
// update can renew, renewAtChecked) would be preferred to every checked
// one until it expired, and a feasibility distance at it would make
// every checked route unfeasible.
func (e *Engine) dropUncovered(o *origin) bool {
	changed := false
	rs := e.routes(o)
	for i := 0; i < len(rs); {
		if r := &rs[i]; r.expiring() && seqnoLess(o.attSeq, r.seqno) {
			e.removeAt(o, i)
			rs = e.routes(o)
			changed = true
			continue
		}
		i++
	}
	if o.fdValid && seqnoLess(o.attSeq, o.fdSeqno) {
		o.fdSeqno, o.fdMetric = o.attSeq, e.cfg.Infinity
		changed = true
	}
	return changed
}

// attMark is an attestation a neighbour beyond the masks holds
// (neighbour.attSent): its epoch and seqno, compared together, because a
// new life of an origin signs the seqnos of its previous life again,
// under a newer epoch.
type attMark struct {
	epoch uint64
	seqno uint16
}

// attMarkOf returns the name of o (nil: Self) and the mark of the
// attestation we hold of it.
func (e *Engine) attMarkOf(o *origin) (string, attMark) {
	if o == nil {
		return e.cfg.Self, attMark{e.selfAttEp, e.selfAttSeq}
	}
	return e.nameOf(o), attMark{e.attOf(o).epoch, o.attSeq}
}

// attHeld reports whether nb holds our attestation of o (nil: Self), the
// newest we have.
func (e *Engine) attHeld(nb *neighbour, o *origin) bool {
	if nb.slot >= maskSlots {
		name, m := e.attMarkOf(o)
		held, ok := nb.attSent[name]
		return ok && held == m
	}
	if o == nil {
		return e.selfAttHeld&(1<<nb.slot) != 0
	}
	return o.attHeld&(1<<nb.slot) != 0
}

// setAttHeld records whether nb holds our attestation of name, which is
// Self or in the table: nb's record holds no other name (forgetAttSent).
func (e *Engine) setAttHeld(nb *neighbour, name string, held bool) {
	if name == e.cfg.Self {
		e.setAttHeldOf(nb, nil, held)
	} else if o := e.origins.get(name); o != nil {
		e.setAttHeldOf(nb, o, held)
	}
}

// setAttHeldOf records whether nb holds our attestation of o (nil: Self).
func (e *Engine) setAttHeldOf(nb *neighbour, o *origin, held bool) {
	if nb.slot >= maskSlots {
		name, m := e.attMarkOf(o)
		if !held {
			delete(nb.attSent, name)
		} else if was, ok := nb.attSent[name]; !ok || was != m {
			// The key is a copy: the name is part of the attestation
			// (newAttestation), which the key would keep alive once o
			// has a newer one or is forgotten. Storing under the name
			// itself, over an entry there, would put it in the key.
			nb.attSent[strings.Clone(name)] = m
		}
		return
	}
	p := &e.selfAttHeld
	if o != nil {
		p = &o.attHeld
	}
	if held {
		*p |= 1 << nb.slot
	} else {
		*p &^= 1 << nb.slot
	}
}

// forgetAttSent forgets what the neighbours beyond the masks hold of o,
// which leaves the table, as its attHeld bits go with it. Kept, the
// record would grow with every origin ever advertised, and a later entry
// of the same name at the seqno recorded would be taken as held: its
// updates would go to them without the attestation, and they would
// refuse them as uncertified until the next summary.
func (e *Engine) forgetAttSent(o *origin) {
	name := e.nameOf(o)
	for nb := range e.farNeighbours() {
		delete(nb.attSent, name)
	}
}

// leafTransit reports (and counts) an entry from leaf neighbour nb about
// another node, which a leaf may not advertise.
func (e *Engine) leafTransit(nb *neighbour, origin string) bool {
	if nb.leaf && origin != nb.name {
		e.stats.IgnoredFromLeaf++
		return true
	}
	return false
}

// jumpPast raises our seqno past seqno and announces it at once.
func (e *Engine) jumpPast(seqno uint16) {
	e.advanceSelf(seqno + 1)
	e.stats.SeqnoBumps++
	e.triggerAll(nil, true)
}

// verify checks en's attestation within nb's failure budget and, unless
// budget is "", within nb's check budget of origin budget (checkBudget).
// If it verified, att is the process's shared copy of it (attestations).
func (e *Engine) verify(t time.Duration, nb *neighbour, en *entry, ep uint64, budget string) (att *attestation, ok bool) {
	rate := float64(e.cfg.MaxVerifyFailures)
	burst := 5 * rate
	if !nb.vInit {
		nb.vInit, nb.vTokens = true, burst
	} else {
		nb.vTokens = min(burst, nb.vTokens+(t-nb.vAt).Seconds()*rate)
	}
	nb.vAt = t
	e.keyBuf = attKey(e.keyBuf, en.origin, en.seqno, en.att)
	c := e.shared // the Certifier whose verdicts are shared, if any
	now := e.epoch.Add(t)
	if a := attestations.verdict(e.keyBuf, c, now); a != nil {
		e.stats.Verified++
		e.stats.CachedVerdicts++
		return a, true
	}
	if nb.vTokens < 1 || (budget != "" && !nb.checks.spend(t, budget, max(nbCheckBurst, float64(e.origins.len())))) {
		e.stats.ThrottledAttestations++
		return nil, false
	}
	// en.origin may alias the message (Engine.intern): the Certifier gets
	// its own copy, as it may keep it.
	if err := e.cfg.Certifier.Verify(strings.Clone(en.origin), ep, en.seqno, en.att); err != nil {
		nb.vTokens--
		e.stats.BadAttestations++
		return nil, false
	}
	e.stats.Verified++
	return attestations.intern(e.keyBuf, ep, c, now), true
}

// cacheable reports whether c can be compared with ==, and so have its
// verdicts shared (attestations); other certifiers' never are.
func cacheable(c Certifier) bool {
	return c != nil && reflect.TypeOf(c).Comparable()
}

// attest returns the attestation covering an update for o (nil: Self)
// and its seqno, for the caller to put to nb, unless nb already has it
// (then att is nil); it counts it as sent and held by nb.
func (e *Engine) attest(nb *neighbour, o *origin) (seqno uint16, att []byte) {
	if e.cfg.Certifier == nil {
		return 0, nil
	}
	var seq uint16
	if o == nil {
		if !e.selfAttValid || e.selfAttSeq != e.seqno || e.selfAttEp != e.selfEpoch {
			a, err := e.cfg.Certifier.Attest(e.cfg.Self, e.selfEpoch, e.seqno)
			if err != nil {
				e.selfAttValid = false
				return 0, nil
			}
			e.selfAtt, e.selfAttSeq, e.selfAttEp, e.selfAttValid, e.selfAttHeld = a, e.seqno, e.selfEpoch, true, 0
		}
		seq, att = e.selfAttSeq, e.selfAtt
	} else {
		if !o.attValid {
			return 0, nil
		}
		seq, att = o.attSeq, e.attOf(o).bytes()
	}
	if e.attHeld(nb, o) {
		return 0, nil
	}
	e.setAttHeldOf(nb, o, true)
	e.stats.AttestationsOut++
	return seq, att
}

// Attestation returns the newest verified attestation of origin (our own
// for Self) and its seqno; ok is false if there is none.
func (e *Engine) Attestation(origin string) (seqno uint16, att []byte, ok bool) {
	if origin == e.cfg.Self {
		return e.selfAttSeq, bytes.Clone(e.selfAtt), e.selfAttValid
	}
	o := e.origins.get(origin)
	if o == nil || !o.attValid {
		return 0, nil, false
	}
	return o.attSeq, []byte(e.attOf(o).att), true
}

// NewSeqno advances this node's seqno and advertises it at once, with a
// fresh attestation: call it when what the Certifier attests changed (a
// renewed certificate).
func (e *Engine) NewSeqno(now time.Time) {
	t := e.at(now)
	e.advanceSelf(e.seqno + 1)
	e.selfAttValid = false
	e.triggerAll(nil, true)
	e.flush(t)
}

// attestation is a verified attestation and the name of its origin, as
// held by table entries, or the name of an origin alone (named). The engines of a process share one copy of each
// (attestations), so that a process running many engines (a simulation)
// holds each attestation and each name once: at 1000 nodes, names copied
// per engine were a million allocations per cold start, and at 5000
// nodes the copies took 3.3 GB. It is never modified.
type attestation struct {
	key    string // attKey: origin and att are parts of it
	origin string
	att    string
	epoch  uint64 // Certifier.Epoch(att)
}

// named returns a holder of name alone, for a table entry without an
// attestation. It keeps name: name must not alias a received message.
func named(name string) *attestation { return &attestation{origin: name} }

// newAttestation copies an attestation from its key (attKey), which may
// alias a received message.
func newAttestation(k []byte, epoch uint64) *attestation {
	key := string(k)
	n := int(key[0])
	return &attestation{key: key, origin: key[1 : 1+n], att: key[1+n+2:], epoch: epoch}
}

// bytes returns the attestation without copying it; it must not be
// modified (it is only encoded).
func (a *attestation) bytes() []byte {
	return unsafe.Slice(unsafe.StringData(a.att), len(a.att))
}
