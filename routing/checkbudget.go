package routing

import "time"

// Full checks of attestations (a signature and a certificate chain each)
// that advance the seqno of an origin we hold, or our own, are budgeted
// per neighbour, successful or not: a neighbour with a valid certificate
// can sign new seqnos of its own name as fast as it likes, and each one
// newer than the last was checked in full while only failures were
// budgeted. An honest origin raises its seqno at most once a second
// (raiseSelf), plus a burst at start or restart, so per (neighbour,
// origin) checkRate a second with a burst of checkBurst are enough; and
// all origins together draw at most nbCheckRate a second per neighbour,
// so that replaying the attestations of many origins does not multiply
// the first bound. That budget's burst is nbCheckBurst or one check per
// origin held, whichever is more: after a partition heals, a neighbour
// may bring a newer seqno of every origin of the other side at once. An
// attestation over budget is dropped unchecked, and the update it covers
// is uncertified, as after a lost attestation: it only renews the
// neighbour's route at the seqno checked before, if it has one
// (renewAtChecked), and the bucket's next summary differs and the bucket
// is resent with its attestations.
// Checks that admit an origin not in the table are not counted here:
// MaxRoutes bounds them. Failures also spend the failure budget
// (Config.MaxVerifyFailures).
const (
	checkRate    = 2.0
	checkBurst   = 5.0
	nbCheckRate  = 50.0
	nbCheckBurst = 250.0
	// checkSweepMin is the size below which the per-origin budgets of a
	// neighbour are not swept.
	checkSweepMin = 64
)

// spent is what a budget of checks has spent and not yet recovered at a
// rate; it is checked against a burst that may change (the neighbour's
// grows with the table). The zero value has spent nothing.
type spent struct {
	n  float64
	at time.Duration
}

// now returns what s has spent at t, recovering rate a second.
func (s spent) now(t time.Duration, rate float64) float64 {
	return max(0, s.n-max(0, (t-s.at).Seconds())*rate)
}

// checkBudget is a neighbour's budget of full attestation checks.
type checkBudget struct {
	total spent
	// origin name (the table's own string, or Self) -> what its budget
	// spent; entries that recovered are swept when the map reaches
	// sweepAt, so it holds at most about twice the entries spent in the
	// last checkBurst/checkRate seconds, which the neighbour's budget
	// bounds.
	origins map[string]spent
	sweepAt int
}

// spend takes one check of name's attestation at t from the budget, or
// reports false (and takes nothing) if the origin's or the neighbour's
// (whose burst is burst) is spent.
func (c *checkBudget) spend(t time.Duration, name string, burst float64) bool {
	total := c.total.now(t, nbCheckRate)
	own := c.origins[name].now(t, checkRate)
	if total+1 > burst || own+1 > checkBurst {
		return false
	}
	c.total = spent{n: total + 1, at: t}
	if c.origins == nil {
		c.origins = make(map[string]spent)
	}
	if _, ok := c.origins[name]; !ok && len(c.origins) >= c.sweepAt {
		for k, s := range c.origins {
			if s.now(t, checkRate) == 0 {
				delete(c.origins, k)
			}
		}
		c.sweepAt = max(checkSweepMin, 2*len(c.origins))
	}
	c.origins[name] = spent{n: own + 1, at: t}
	return true
}

// supersede marks the attestations of a message (those of attested
// updates included) that another attestation of the same origin in it
// makes useless: of each origin's, all but the newest in the order of
// (epoch, seqno) (attNewer; epoch reads the epoch an attestation claims,
// nil: none; the later of two equal ones) are marked, so only one is checked however many a
// message carries. A marked entry has a nil att (the decoder never gives
// one); an attested update so marked is still an update. One pass over a
// table on the stack, as a message holds at most maxEntriesLimit entries.
func supersede(entries []entry, epoch func([]byte) uint64) {
	const slots = 512     // a power of two, more than twice maxEntriesLimit
	var last [slots]uint8 // entry index + 1 of the newest so far; 0: empty
	if len(entries) > maxEntriesLimit {
		return
	}
	for i := range entries {
		a := &entries[i]
		if a.kind != kindAttest && a.kind != kindAttUpdate {
			continue
		}
		h := nameHash(a.origin)
		for {
			k := &last[h&(slots-1)]
			if *k == 0 {
				*k = uint8(i + 1)
				break
			}
			b := &entries[*k-1]
			if b.origin != a.origin {
				h++
				continue
			}
			var ea, eb uint64
			if epoch != nil {
				ea, eb = epoch(a.att), epoch(b.att)
			}
			if attNewer(eb, b.seqno, ea, a.seqno) {
				a.att = nil
			} else {
				b.att = nil
				*k = uint8(i + 1)
			}
			break
		}
	}
}

// renewAtChecked turns en, an update from nb whose seqno no verified
// attestation covers, into nb's update at the seqno of the route nb
// already has for o, which a verified attestation covered when it was
// installed, and reports whether it did; it does not if nb has no such
// route. The update then refreshes that route (its expiry, its metric)
// at its old seqno, never at en's: nb could do as much by sending
// the same update at that seqno. Otherwise a neighbour that relays more
// new seqnos than our budget checks (checkBudget) — a node asking it
// for a newer seqno of every origin is enough — would see the routes of
// those it relays unchecked expire, their origins up.
func (e *Engine) renewAtChecked(o *origin, nb *neighbour, en *entry) bool {
	if o == nil {
		return false
	}
	i := e.find(o, nb)
	if i < 0 || !e.routes(o)[i].hasSeqno() || !o.attValid || seqnoLess(o.attSeq, e.routes(o)[i].seqno) {
		return false // no route, or its seqno is covered no more
	}
	en.seqno = e.routes(o)[i].seqno
	return true
}
