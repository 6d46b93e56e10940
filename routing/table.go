package routing

import (
	"slices"
	"strings"
	"time"
)

// neighbour is a node with a link up.
type neighbour struct {
	name string
	cost Metric
	leaf bool
	slot int // index in Engine.slots; bit of origin.told when < 64

	sentOnce bool
	lastSent time.Duration // last update batch sent (rate limit)
	// Origins to advertise, each once (origin.pend, or pendSet from slot
	// 64 on, says which are queued), and whether Self is.
	pending    []*origin
	pendSet    map[*origin]struct{}
	pendSelf   bool
	pendingAll bool                // full dump due (new link)
	repair     map[string]struct{} // origins to resend on request, retractions included
	summaryDue bool                // periodic summary due
	urgent     bool                // a reply to a request is pending
	requests   map[string]entry    // seqno requests to send
	resends    []entry             // resend requests to send

	// Requests from nb draw at most one reply and one forward per origin
	// per MinTriggeredInterval: origin -> time of the last one. Only held
	// origins get an entry, stale entries are swept (holdUntil).
	replied   map[string]time.Duration
	forwarded map[string]time.Duration

	// Resend requests from nb are answered only for the bucket count of
	// the last summary sent to it (sumBuckets, 0 before the first), each
	// bucket at most once per summary (bit set in answered).
	sumBuckets uint16
	answered   []uint64
	// The summaries nb sent us in its current set (admitSummaries).
	sumWin summaryWindow

	// attSent: origin -> seqno of the attestation it holds (sent by us or
	// to us), for slots from 64 on (below, origin.attHeld says it).
	attSent map[string]uint16

	// Failed-verification budget (token bucket, Config.MaxVerifyFailures).
	vInit   bool
	vTokens float64
	vAt     time.Duration
}

func newNeighbour(name string, cost Metric, leaf bool, slot int) *neighbour {
	return &neighbour{
		name: name, cost: cost, leaf: leaf, pendingAll: true, slot: slot,
		repair:    make(map[string]struct{}),
		requests:  make(map[string]entry),
		replied:   make(map[string]time.Duration),
		forwarded: make(map[string]time.Duration),
		attSent:   make(map[string]uint16),
	}
}

// routeEntry is the route a neighbour advertised for an origin (24
// bytes: three of them are held in every table entry).
type routeEntry struct {
	nb *neighbour
	// expires is when the route expires; 0 for a route that does not
	// (a neighbour's route to itself), implicitRoute for a neighbour's
	// implicit route to itself before its first update, which carries no
	// seqno.
	expires time.Duration
	metric  Metric // as advertised by nb (without the link cost)
	seqno   uint16
	hops    uint16 // as advertised by nb
}

// implicitRoute marks the route to a new neighbour (routeEntry.expires).
const implicitRoute time.Duration = -1

// hasSeqno reports whether r was advertised (not implicit), and so
// carries a real seqno.
func (r *routeEntry) hasSeqno() bool { return r.expires != implicitRoute }

// expiring reports whether r expires unless refreshed.
func (r *routeEntry) expiring() bool { return r.expires > 0 }

// origin is everything known about one destination. Its fields are
// ordered by size so that none is padded (192 bytes): one exists per
// destination at every node.
type origin struct {
	name string
	hash uint64 // nameHash(name)
	// The routes (routes()): in inl while there are at most three, room
	// for the routes of a node with a few neighbours allocated with the
	// entry (a separate array was one allocation more per destination at
	// every node); beyond, all of them in x.more.
	inl [3]routeEntry
	sel *neighbour // selected next hop, nil when unreachable
	// pend has bit i set if o is queued in the pending list of the
	// neighbour in slot i.
	pend uint64
	// told has bit i set if the neighbour in slot i was last told a finite
	// route (slots from 64 on are not tracked: advertised stands in).
	told   uint64
	lostAt time.Duration // when the route was last lost

	// Candidate next hop and seqno request state, allocated by ext the
	// first time the origin has either: most destinations never do, and
	// every byte of origin is paid at every node for every destination.
	x *originExt

	// Newest verified attestation of the origin (Config.Certifier),
	// shared through attestations: every engine of a process (a
	// simulation) that holds it holds the same bytes.
	att     *attestation
	attHeld uint64 // bit i: the neighbour in slot i holds att

	rtMetric Metric // the selected route (routeOf gives it in full)
	rtHops   uint32
	// Feasibility distance: the best (seqno, metric) we advertised.
	fdMetric Metric
	// The route last advertised (finite), to spot changes below the
	// hysteresis that were not sent.
	advMetric Metric

	rtSeqno  uint16
	fdSeqno  uint16
	advSeqno uint16
	advHops  uint16
	attSeq   uint16

	nInl        uint8 // routes in inl
	rtReachable bool
	selSeq      bool // selected route carries a real seqno
	seqKnown    bool // some selected route carried a real seqno
	fdValid     bool
	advertised  bool // a finite route was ever advertised
	removed     bool // no longer in the table (a stale pending entry)
	attValid    bool
}

// originExt is the rarely used part of an origin.
type originExt struct {
	// The routes, once there were more than fit in origin.inl (non-nil
	// from then on).
	more []routeEntry

	// A route better than the selected one by no more than the
	// hysteresis: its next hop and since when it has stayed better.
	cand      *neighbour
	candSince time.Duration

	// The seqno request in progress (reqActive), and the last one
	// forwarded (fwdValid).
	reqRetry   time.Duration
	reqBackoff time.Duration
	fwdUntil   time.Duration
	reqSeqno   uint16
	fwdSeqno   uint16
	reqActive  bool
	fwdValid   bool
	watched    bool // in Engine.watch
}

// ext returns o's rarely used state, allocating it on first use.
func (o *origin) ext() *originExt {
	if o.x == nil {
		o.x = &originExt{}
	}
	return o.x
}

// cand returns the candidate next hop (nil if none).
func (o *origin) cand() *neighbour {
	if o.x == nil {
		return nil
	}
	return o.x.cand
}

// dropCand forgets the candidate next hop.
func (o *origin) dropCand() {
	if o.x != nil {
		o.x.cand = nil
	}
}

// reqActive reports whether a seqno request for o is in progress.
func (o *origin) reqActive() bool { return o.x != nil && o.x.reqActive }

// selRoute is the selected route of an origin without its next hop
// (origin.sel).
type selRoute struct {
	metric    Metric
	hops      uint32
	seqno     uint16
	reachable bool
}

func (o *origin) selected() selRoute {
	return selRoute{o.rtMetric, o.rtHops, o.rtSeqno, o.rtReachable}
}

func (o *origin) setSelected(r selRoute) {
	o.rtMetric, o.rtHops, o.rtSeqno, o.rtReachable = r.metric, r.hops, r.seqno, r.reachable
}

// routeOf returns the selected route of o as reported to the caller.
func (o *origin) routeOf() Route {
	r := Route{Dest: o.name, Metric: o.rtMetric, Hops: int(o.rtHops), Seqno: o.rtSeqno, Reachable: o.rtReachable}
	if o.rtReachable {
		r.NextHop = o.sel.name
	}
	return r
}

// toldFinite reports whether nb may hold a finite route from us for o.
func (o *origin) toldFinite(nb *neighbour) bool {
	if nb.slot >= 64 {
		return o.advertised
	}
	return o.told&(1<<nb.slot) != 0
}

// setTold records what nb was last told about o.
func (o *origin) setTold(nb *neighbour, finite bool) {
	if nb.slot >= 64 {
		return
	}
	if finite {
		o.told |= 1 << nb.slot
	} else {
		o.told &^= 1 << nb.slot
	}
}

// routes returns the routes neighbours advertised for o, one per
// neighbour. Changing one changes the route; adding or removing one goes
// through upsert, remove and removeAt.
func (o *origin) routes() []routeEntry {
	if o.x != nil && o.x.more != nil {
		return o.x.more
	}
	return o.inl[:o.nInl]
}

func (o *origin) find(nb *neighbour) int {
	rs := o.routes()
	for i := range rs {
		if rs[i].nb == nb {
			return i
		}
	}
	return -1
}

func (o *origin) upsert(r routeEntry) *routeEntry {
	if i := o.find(r.nb); i >= 0 {
		rs := o.routes()
		rs[i] = r
		return &rs[i]
	}
	switch {
	case o.x != nil && o.x.more != nil:
		o.x.more = append(o.x.more, r)
		return &o.x.more[len(o.x.more)-1]
	case int(o.nInl) < len(o.inl):
		o.inl[o.nInl] = r
		o.nInl++
		return &o.inl[o.nInl-1]
	}
	x := o.ext()
	x.more = append(make([]routeEntry, 0, 2*len(o.inl)), o.inl[:]...)
	x.more = append(x.more, r)
	o.inl, o.nInl = [len(o.inl)]routeEntry{}, 0
	return &x.more[len(x.more)-1]
}

func (o *origin) remove(nb *neighbour) bool {
	i := o.find(nb)
	if i < 0 {
		return false
	}
	o.removeAt(i)
	return true
}

// removeAt removes the i-th route (routes()), keeping the others in order.
func (o *origin) removeAt(i int) {
	if o.x != nil && o.x.more != nil {
		o.x.more = slices.Delete(o.x.more, i, i+1)
		return
	}
	n := int(o.nInl)
	copy(o.inl[i:n], o.inl[i+1:n])
	o.inl[n-1] = routeEntry{}
	o.nInl--
}

// seqnoLess compares sequence numbers modulo 2^16 (RFC 8966 §3.2.1).
func seqnoLess(a, b uint16) bool { return a != b && b-a < 0x8000 }

// add sums metrics, saturating at infinity.
func (e *Engine) add(a, b Metric) Metric {
	s := uint64(a) + uint64(b)
	if s >= uint64(e.cfg.Infinity) {
		return e.cfg.Infinity
	}
	return Metric(s)
}

func (e *Engine) total(r *routeEntry) Metric { return e.add(r.metric, r.nb.cost) }

// feasible is Babel's feasibility condition: an advertised distance
// (seqno, metric) is feasible if it is strictly better than the distance
// we last advertised for the origin.
func (o *origin) feasible(seqno uint16, metric Metric) bool {
	if !o.fdValid || seqnoLess(o.fdSeqno, seqno) {
		return true
	}
	return seqno == o.fdSeqno && metric < o.fdMetric
}

// usable reports whether r may be selected: finite, and either feasible or
// the neighbour's own route to itself (a next hop that is the destination
// cannot loop).
func (e *Engine) usable(o *origin, r *routeEntry) bool {
	if e.total(r) >= e.cfg.Infinity {
		return false
	}
	if r.nb.name == o.name {
		return true
	}
	return !r.nb.leaf && r.hasSeqno() && o.feasible(r.seqno, r.metric)
}

// addOrigin creates the table entry for name, or returns nil and counts a
// refusal when the table is full. The entry keeps name: it must not alias
// a received message.
func (e *Engine) addOrigin(name string) *origin {
	if e.origins.len() >= e.cfg.MaxRoutes {
		e.stats.RefusedOrigins++
		return nil
	}
	o := e.newOrigin() // zeroed
	o.name, o.hash, o.rtMetric = name, nameHash(name), e.cfg.Infinity
	e.origins.insert(o)
	e.originOrder = nil
	return o
}

// originSlab is the number of table entries allocated together. One
// allocation per destination at every node was a tenth of the CPU time of
// a cold start at 1000 nodes; a slab is freed once none of its entries is
// in use, so at most originSlab-1 forgotten entries per live one stay
// allocated (bounded by MaxRoutes×originSlab entries). 42 entries of 192
// bytes and the allocator's 8-byte header fill 8,072 bytes of its
// 8,192-byte size class (TestOriginSlabFillsItsSizeClass).
const originSlab = 42

// newOrigin returns a zeroed table entry from the current slab. Slabs
// grow with the table, from 4 entries to originSlab, so that a small table
// stays small.
func (e *Engine) newOrigin() *origin {
	if len(e.slab) == 0 {
		e.slab = make([]origin, min(originSlab, max(e.origins.len(), 4)))
	}
	o := &e.slab[0]
	e.slab = e.slab[1:]
	return o
}

// reselect chooses the best usable route for o, keeping the current one
// unless another beats it by more than the hysteresis margin.
func (e *Engine) reselect(t time.Duration, o *origin) {
	var best *routeEntry
	var bestM Metric
	var cur *routeEntry
	rs := o.routes()
	for i := range rs {
		r := &rs[i]
		if !e.usable(o, r) {
			continue
		}
		m := e.total(r)
		if r.nb == o.sel {
			cur = r
		}
		if best == nil || m < bestM || (m == bestM && r.nb.name < best.nb.name) {
			best, bestM = r, m
		}
	}
	if cur != nil && best != cur && uint64(bestM)+uint64(e.cfg.Hysteresis) >= uint64(e.total(cur)) {
		// Better, but within the margin: take it only once it has stayed
		// better for an update interval, so that routes still settle on
		// the shortest paths while jitter does not move them.
		switch {
		case bestM >= e.total(cur):
			o.dropCand()
			best = cur
		case o.cand() != best.nb:
			x := o.ext()
			x.cand, x.candSince = best.nb, t
			e.watchOrigin(o, t+e.cfg.UpdateInterval)
			best = cur
		case t < o.x.candSince+e.cfg.UpdateInterval:
			best = cur
		default:
			o.dropCand()
		}
	} else {
		o.dropCand()
	}
	e.apply(t, o, best)
	// Better routes we cannot take because they are unfeasible: ask the
	// origin for a new seqno so that they become feasible.
	if nbs := e.betterUnfeasible(o); len(nbs) > 0 {
		e.sendRequest(t, o, o.fdSeqno+1, nbs)
	}
}

// apply installs r (nil: unreachable) as the selected route of o, emitting
// events, triggered updates and seqno requests as needed.
func (e *Engine) apply(t time.Duration, o *origin, r *routeEntry) {
	old, oldSel := o.selected(), o.sel
	oldSeq := o.selSeq
	nr := selRoute{metric: e.cfg.Infinity, seqno: old.seqno}
	o.sel, o.selSeq = nil, false
	if r != nil {
		o.sel, o.selSeq = r.nb, r.hasSeqno()
		nr = selRoute{metric: e.total(r), hops: uint32(r.hops) + 1, seqno: r.seqno, reachable: true}
	}
	o.setSelected(nr)
	// Retractions go out at once; they drive failover. So does a new
	// seqno that answers a request we forwarded (RFC 8966 §3.8.1.2); any
	// other change of seqno alone is not sent (see advertisedTo): nobody
	// needs it, and sending it would flood every bump to every node.
	answers := nr.reachable && o.selSeq && o.x != nil && o.x.fwdValid && !seqnoLess(nr.seqno, o.x.fwdSeqno)
	if answers {
		o.x.fwdValid = false
	}
	urgent := !nr.reachable && old.reachable || answers
	o.seqKnown = o.seqKnown || o.selSeq
	trigger := urgent
	switch {
	case old.reachable != nr.reachable:
		trigger = true
		kind := PeerUp
		if !nr.reachable {
			kind = PeerDown
			o.lostAt = t
			e.scheduleHousekeep(t + 2*e.cfg.RouteExpiry)
		}
		e.emit(Event{Kind: kind, Dest: o.name, Reachable: nr.reachable, Route: o.routeOf()})
	case !nr.reachable:
	case oldSel.name != o.sel.name: // both reachable
		trigger = true
		e.emit(Event{Kind: NextHopChanged, Dest: o.name, Reachable: true, Route: o.routeOf()})
	case oldSeq != o.selSeq:
		trigger = true
	case absDiff(old.metric, nr.metric) > e.cfg.Hysteresis, old.hops != nr.hops:
		trigger = true
	}
	if trigger && o.advertisable() {
		e.triggerAll(o, urgent)
	}
	if nr.reachable && o.selSeq && o.reqActive() && !seqnoLess(nr.seqno, o.x.reqSeqno) {
		o.x.reqActive = false
	}
}

func absDiff(a, b Metric) Metric {
	if a > b {
		return a - b
	}
	return b - a
}

// advertisable reports whether o may appear in our updates at all.
func (o *origin) advertisable() bool { return o.selSeq || o.advertised }

// handleUpdate processes one received update from nb.
func (e *Engine) handleUpdate(t time.Duration, nb *neighbour, en entry) {
	if en.origin == e.cfg.Self {
		if e.cfg.Certifier != nil {
			return // only a verified attestation moves our seqno (handleAttest)
		}
		// Someone holds a newer seqno for us than we do (we restarted):
		// jump past it so our fresh routes are feasible everywhere.
		if en.metric < e.cfg.Infinity && seqnoLess(e.seqno, en.seqno) {
			e.jumpPast(en.seqno)
		}
		return
	}
	if e.leafTransit(nb, en.origin) {
		return
	}
	o := e.originOf(en)
	if en.metric >= e.cfg.Infinity {
		// A retraction. A neighbour's route to itself stays while the
		// link is up.
		if o != nil && en.origin != nb.name && o.remove(nb) {
			e.reselect(t, o)
		}
		return
	}
	if en.origin != nb.name && (en.hops == 0 || Metric(en.hops) > en.metric) {
		// Every link costs at least 1: a relay cannot be at distance 0,
		// nor below its hop count.
		e.stats.Implausible++
		return
	}
	if e.cfg.Certifier != nil && (o == nil || !o.attValid || seqnoLess(o.attSeq, en.seqno)) {
		// No verified attestation covers this seqno: the name or the
		// seqno was not issued by the origin.
		e.stats.Uncertified++
		return
	}
	if o == nil {
		// A copy: en.origin may alias the message.
		if o = e.addOrigin(strings.Clone(en.origin)); o == nil {
			return
		}
	}
	r := routeEntry{nb: nb, seqno: en.seqno, metric: en.metric, hops: en.hops}
	if en.origin != nb.name {
		r.expires = t + e.cfg.RouteExpiry
		e.scheduleHousekeep(r.expires)
	} else {
		r.metric = 0 // a node is at distance 0 from itself
	}
	o.upsert(r)
	e.reselect(t, o)
}
