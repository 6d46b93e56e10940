package routing

import (
	"iter"
	"slices"
	"strings"
	"time"
)

// neighbour is a node with a link up.
type neighbour struct {
	name string
	cost Metric
	leaf bool
	slot int // index in Engine.slots; bit of origin.told when < maskSlots
	// The link is drained by us (Engine.Drain), or by nb, which retracted
	// its own route to us (drain.go).
	drainLocal, drainPeer bool
	drainAt               time.Duration // when drainPeer was last set (drainOnce: it was)
	drainGap              time.Duration // the least time from drainAt to the next drain taken (peerDrainUpdate)
	drainOnce             bool
	// selfOrg is nb's own table entry, made or found by LinkUp (nil if
	// the table was full then); its route to itself keeps it in the
	// table while the link is up.
	selfOrg *origin

	sentOnce bool
	// The intervals between nb's summary sets, which set the hold of its
	// routes (hold.go).
	gaps     summaryGaps
	lastSent time.Duration // last update batch sent (rate limit)
	// reads4: nb sent a message of wireVersion since its link came up,
	// so it reads attested updates; hello: our hello (a message of
	// wireVersion without entries) is due to nb, before anything else.
	reads4, hello bool
	// spoke: nb sent a message this engine could decode (any version, a
	// hello included) since its link came up.
	spoke bool
	// Origins to advertise, by id, each once (origin.pend, or pendSet
	// from slot maskSlots on, says which are queued), and whether Self
	// is. Ids, not pointers: half the bytes, and nothing the collector
	// scans (a cold start at 1000 nodes queues most of the table for
	// every neighbour: 23 MB of lists grown by doubling, 10 MB kept
	// mid-way). A removed entry keeps its id while a list holds it
	// (Engine.zombies).
	pending    []uint32
	pendSet    map[uint32]struct{}
	pendSelf   bool
	pendingAll bool                // full dump due (new link)
	repair     map[string]struct{} // origins to resend on request, retractions included
	summaryDue bool                // periodic summary due
	urgent     bool                // a reply to a request is pending
	requests   map[string]entry    // seqno requests to send
	resends    []entry             // resend requests to send
	// ownAttDue: our attestation of nb's own name is due back to nb,
	// which sent an older one of its own (returnOwnAtt); ownAttAt is
	// when one was last made due (ownAttSet: ever).
	ownAttDue, ownAttSet bool
	ownAttAt             time.Duration

	// What was sent to nb in the window of MinTriggeredInterval that
	// started at burstAt: bytes and messages (Config.MaxBurstBytes).
	burstAt    time.Duration
	burstBytes int
	burstMsgs  int

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

	// attSent: origin -> the attestation it holds (sent by us or to us),
	// for slots from maskSlots on (below, origin.attHeld says it). Only
	// Self and origins in the table have an entry (forgetAttSent), so it
	// holds at most MaxRoutes+1.
	attSent map[string]attMark

	// Failed-verification budget (token bucket, Config.MaxVerifyFailures).
	vInit   bool
	vTokens float64
	vAt     time.Duration
	// Budget of full checks of held origins' newer seqnos (checkbudget.go).
	checks checkBudget
	// Budget of messages received from nb (recvbudget.go).
	rx recvBudget
}

func newNeighbour(name string, cost Metric, leaf bool, slot int) *neighbour {
	return &neighbour{
		name: name, cost: cost, leaf: leaf, pendingAll: true, slot: slot, hello: true,
		repair:    make(map[string]struct{}),
		requests:  make(map[string]entry),
		replied:   make(map[string]time.Duration),
		forwarded: make(map[string]time.Duration),
		attSent:   make(map[string]attMark),
	}
}

// routeEntry is the route a neighbour advertised for an origin (16
// bytes: three of them are held in every table entry, 24 while they held
// a pointer to the neighbour and a 64-bit expiry). It names its
// neighbour by slot (Engine.held), so that table entries hold no pointer.
type routeEntry struct {
	metric Metric // as advertised by the neighbour (without the link cost)
	// exp is when an expiring route expires, in ticks (expiryTick).
	exp   uint32
	slot  uint16 // the neighbour's slot
	seqno uint16
	hops  uint16 // as advertised by the neighbour
	// life is routeKept for a route that does not expire (a neighbour's
	// route to itself), routeImplicit for a neighbour's implicit route
	// to itself before its first update, which carries no seqno, and
	// routeExpiring for the others.
	life uint8
}

const (
	routeKept = iota
	routeImplicit
	routeExpiring
)

// hasSeqno reports whether r was advertised (not implicit), and so
// carries a real seqno.
func (r *routeEntry) hasSeqno() bool { return r.life != routeImplicit }

// expiring reports whether r expires unless refreshed.
func (r *routeEntry) expiring() bool { return r.life == routeExpiring }

// Expiry times are held in 32 bits, as ticks of a millisecond that wrap
// around (every 49 days), and compared with the current time modulo 2^32:
// 8 bytes less per route, 24 per table entry. A route expires no later
// than maxExpiryAhead after it was set (far beyond any sensible
// RouteExpiry: summaries refresh routes every UpdateInterval), so that
// the comparison never wraps.
const (
	expiryTick     = time.Millisecond
	maxExpiryAhead = (1 << 30) * expiryTick
)

// setExpiry makes r expire at at (rounded up to a tick), t being now.
func (r *routeEntry) setExpiry(t, at time.Duration) {
	at = min(at, t+maxExpiryAhead)
	r.life, r.exp = routeExpiring, uint32((at+expiryTick-1)/expiryTick)
}

// expiredAt reports whether expiring route r has expired at t.
func (r *routeEntry) expiredAt(t time.Duration) bool {
	return int32(r.exp-uint32(t/expiryTick)) <= 0
}

// expiresAt returns when expiring route r expires, t being now.
func (r *routeEntry) expiresAt(t time.Duration) time.Duration {
	base := t / expiryTick
	return (base + time.Duration(int32(r.exp-uint32(base)))) * expiryTick
}

// maskSlots is the number of neighbour slots tracked by the bitmasks of
// a table entry (pend, told, attHeld); neighbours in further slots are
// tracked per neighbour instead (neighbour.pendSet, attSent).
const maskSlots = 32

// farNeighbours yields the neighbours in slots from maskSlots on.
func (e *Engine) farNeighbours() iter.Seq[*neighbour] {
	return func(yield func(*neighbour) bool) {
		for _, nb := range e.slots[min(len(e.slots), maskSlots):] {
			if nb != nil && !yield(nb) {
				return
			}
		}
	}
}

// slotMask has bit i set for the neighbour in slot i.
type slotMask = uint32

// origin is everything known about one destination at one node: one
// exists per destination at every node, so every byte of it counts (25
// million of them at 5000 nodes in one process). It holds no pointer:
// its neighbours are slot numbers, and its name, attestation and rarely
// used state are in Engine.side at index id. Slabs of origins are
// therefore never scanned by the garbage collector, which marked the
// seven pointers of each of a million entries at every cycle of a cold
// start at 1000 nodes. It takes 112 bytes (110 of fields).
type origin struct {
	// The fields a received update reads (handleUpdate, upsert) come
	// first, within 64 bytes, so that an update worse than the route
	// selected (a third of them in a cold start at 1000 nodes) reads one
	// or two cache lines of the entry instead of two or three: the
	// routes, what is selected and the attestation's seqno.
	//
	// The routes (Engine.routes): in inl while there are at most three
	// (room for the routes of a node with a few neighbours held in the
	// entry); beyond, all of them in the spill's more.
	inl      [3]routeEntry
	rtMetric Metric // the selected route (routeOf gives it in full)
	selSlot  uint16 // slot of the selected next hop, when rtReachable
	attSeq   uint16

	nInl        uint8 // routes in inl
	rtReachable bool
	attValid    bool
	hasMore     bool // the routes are in the spill's more
	// hasExt: the side entry holds a spill (with the routes or the
	// rarely used state), so that the many entries without one are not
	// read for it (xOf).
	hasExt     bool
	selSeq     bool // selected route carries a real seqno
	fdValid    bool
	advertised bool // a finite route was ever advertised

	// While unreachable, when the route was lost (or the entry made);
	// while reachable, when the feasibility distance last moved
	// (selectedLost reads it, damp.go).
	changedAt time.Duration
	// pend has bit i set if o is queued in the pending list of the
	// neighbour in slot i.
	pend slotMask
	// told has bit i set if the neighbour in slot i was last told a finite
	// route (slots from maskSlots on are not tracked: advertised stands in).
	told    slotMask
	attHeld slotMask // bit i: the neighbour in slot i holds the attestation
	rtHops  uint32
	// Feasibility distance: the best (seqno, metric) we advertised.
	fdMetric Metric
	// The route last advertised (finite), to spot changes below the
	// hysteresis that were not sent.
	advMetric Metric
	id        uint32 // index in Engine.side

	rtSeqno  uint16
	fdSeqno  uint16
	advSeqno uint16
	advHops  uint16

	seqKnown bool // some selected route carried a real seqno
	removed  bool // no longer in the table (a stale pending or watch entry)
	coldHeld bool // its first announcement is held (Engine.coldHolds)
	hopsHeld bool // a change of its hops alone is held (Engine.hopHolds)
}

// originSide is the part of an origin that holds pointers, kept apart
// (Engine.side) so that the entries themselves hold none. It holds one
// pointer the collector follows for most entries (ref; x is nil for most
// of them): it held the entry's pointer, its name and its attestation,
// three pointers to follow for each of the million entries of a 1000-node
// mesh at every collection of a cold start (the collector took 2.3 of
// its 12.5 billion instructions, Ed25519 aside; 1.9 with one pointer).
type originSide struct {
	// The origin's name (ref.origin) and, while the entry's attValid
	// is set, its newest verified attestation (Config.Certifier),
	// shared through attestations: every engine of a process (a
	// simulation) that holds it holds the same bytes. An origin without
	// one has a name alone (named).
	ref *attestation
	// The routes beyond those held in the entry, and the candidate next
	// hop and seqno request state, allocated the first time the origin
	// has any of them: most destinations never do.
	x *originSpill
	// Where the entry is: sideTable.slabs[slab][off].
	slab, off uint32
}

// sideTable holds the originSides of an engine by id, in chunks of
// sideChunk, so that a growing table allocates each side entry once:
// one slice grown by appending allocated twice what it kept at 1000
// nodes (68 MB for 31 MB), all of it fresh pages. It also holds the
// table entries themselves, in slabs (place).
type sideTable struct {
	chunks []*[sideChunk]originSide
	n      uint32 // ids given out

	// Table entries are allocated together, originSlab at a time: one
	// allocation per destination at every node was a tenth of the CPU
	// time of a cold start at 1000 nodes. slabs[i] is nil once every
	// entry of it was released (its index is then in freeSlabs, for the
	// next slab); live counts the entries in use in each. cur is the
	// slab being filled (-1: none), from offset next on.
	slabs     [][]origin
	live      []uint16
	freeSlabs []uint32
	cur       int
	next      int
}

// sideChunk is the number of side entries allocated together: 256 of
// 24 bytes and the allocator's 8-byte header for objects holding
// pointers take 6,152 bytes of the 6,528-byte size class. A power of two,
// so that finding an entry (at: 4.6 % of the engine's instructions in a
// cold start at 1000 nodes when chunks held 204) takes a shift and a
// mask.
const sideChunk = 256

// at returns the side entry of id, which was given out.
func (s *sideTable) at(id uint32) *originSide {
	return &s.chunks[id/sideChunk][id%sideChunk]
}

// add gives out the next id, with a zero side entry.
func (s *sideTable) add() uint32 {
	if s.n%sideChunk == 0 {
		s.chunks = append(s.chunks, new([sideChunk]originSide))
	}
	s.n++
	return s.n - 1
}

// place gives id, a side entry not in use, a zeroed table entry named by
// ref. A new slab takes size entries (at most originSlab).
func (s *sideTable) place(id uint32, ref *attestation, size int) *origin {
	if len(s.slabs) == 0 || s.next == len(s.slabs[s.cur]) {
		if len(s.slabs) > 0 && s.live[s.cur] == 0 {
			s.drop(s.cur) // all released while it was filled
		}
		slab := make([]origin, min(originSlab, max(size, 1)))
		if n := len(s.freeSlabs); n > 0 {
			s.cur, s.freeSlabs = int(s.freeSlabs[n-1]), s.freeSlabs[:n-1]
			s.slabs[s.cur], s.live[s.cur] = slab, 0
		} else {
			s.cur = len(s.slabs)
			s.slabs, s.live = append(s.slabs, slab), append(s.live, 0)
		}
		s.next = 0
	}
	o := &s.slabs[s.cur][s.next]
	o.id = id
	*s.at(id) = originSide{ref: ref, slab: uint32(s.cur), off: uint32(s.next)}
	s.next++
	s.live[s.cur]++
	return o
}

// entry returns the table entry of side entry x, which is in use.
func (s *sideTable) entry(x *originSide) *origin { return &s.slabs[x.slab][x.off] }

// release clears the side entry of id, which is in use, and lets its
// table entry go: a slab is freed once none of its entries is in use, so
// that at most originSlab-1 forgotten entries per live one stay
// allocated. (A removed entry still in a watch list keeps its slab
// allocated until it leaves the list, and is skipped there; one still in
// a pending list is released only once it leaves the list,
// Engine.removeOrigin.)
func (s *sideTable) release(id uint32) {
	x := s.at(id)
	i := int(x.slab)
	*x = originSide{}
	s.live[i]--
	if s.live[i] == 0 && i != s.cur {
		s.drop(i)
	}
}

func (s *sideTable) drop(i int) {
	s.slabs[i] = nil
	s.freeSlabs = append(s.freeSlabs, uint32(i))
}

// originSpill is what an origin holds beyond its table entry: the
// routes that do not fit in the entry, and the rarely used state. An
// origin at a node with more than three neighbours spills its routes
// (an eighth of the million origins of a cold start at 1000 nodes) but
// rarely has any of that state, so that the two are allocated apart: a
// spill of 32 bytes and its routes, sized to the node's neighbours, took
// 128 bytes and routes sized for six (23 MB for 11 MB).
type originSpill struct {
	// The routes, once there were more than fit in origin.inl (non-nil
	// from then on).
	more []routeEntry
	// The rarely used state, allocated by Engine.ext the first time the
	// origin has any.
	x *originExt
}

// originExt is the rarely used part of an origin.
type originExt struct {
	// Some route has been better than the selected one, by no more than
	// the hysteresis, since beatenSince (beaten), whichever route it was.
	beaten      bool
	beatenSince time.Duration

	// The neighbours whose routes of this origin, selected, were lost
	// soon after they lowered the feasibility distance (marks), and the
	// floor of the metric sent while one is damped (damp.go): floorOn while
	// the route selected, through slot floorSlot, is sent at floor at
	// least, until floorUntil (Engine.floorHolds).
	marks      []dampMark
	floor      Metric
	floorUntil time.Duration
	floorSlot  uint16
	floorOn    bool

	// The seqno request in progress (reqActive), and the ones forwarded
	// (fwdValid): the oldest seqno asked for and not answered yet
	// (fwdSeqno), and the one forwarded last (fwdTop, at fwdAt, asked by
	// fwdBy), after which requests reaching no further for no newer
	// seqno, or from fwdBy, are dropped for a while; the requests forwarded in the window since winAt
	// (winN), beyond which those reaching no further are held: the
	// newest one asked for (reqHeld: heldSeqno, heldHop, asked by
	// heldBy) goes on at the end of the hold (Engine.reqHolds).
	fwdBy      *neighbour
	heldBy     *neighbour
	hopsNext   time.Duration // when a change of hops alone may next go out at once (hopsDue)
	reqRetry   time.Duration
	reqBackoff time.Duration
	fwdAt      time.Duration
	winAt      time.Duration
	reqSeqno   uint16
	fwdSeqno   uint16
	fwdTop     uint16
	heldSeqno  uint16
	fwdHop     uint8 // the hop count of the request forwarded for fwdTop
	heldHop    uint8
	winN       uint8
	reqHeld    bool
	reqActive  bool
	fwdValid   bool
	watched    bool // in Engine.watch

	// The neighbours that asked for a newer seqno through us or hold a
	// newer one from us than the others (seqhold.go), at most one entry
	// per neighbour; when a new seqno alone last went to every neighbour
	// (allValid, allAt); and whether the next route sent differing from
	// the advertised one by its seqno alone goes to every neighbour
	// (promote: apply sent it to all).
	holds    []seqHold
	allAt    time.Duration
	allValid bool
	promote  bool
}

// hashOf returns nameHash of o's name.
func (e *Engine) hashOf(o *origin) uint64 { return nameHash(e.nameOf(o)) }

// nameOf returns the name of o, which must be in the table.
func (e *Engine) nameOf(o *origin) string { return e.side.at(o.id).ref.origin }

// attOf returns o's attestation, which it must have (o.attValid).
func (e *Engine) attOf(o *origin) *attestation { return e.side.at(o.id).ref }

// xOf returns o's rarely used state, nil if it has none.
func (e *Engine) xOf(o *origin) *originExt {
	if !o.hasExt {
		return nil
	}
	return e.side.at(o.id).x.x
}

// spill returns what o holds beyond its entry, allocating it on first
// use.
func (e *Engine) spill(o *origin) *originSpill {
	s := e.side.at(o.id)
	if s.x == nil {
		s.x = &originSpill{}
	}
	o.hasExt = true
	return s.x
}

// ext returns o's rarely used state, allocating it on first use.
func (e *Engine) ext(o *origin) *originExt {
	s := e.spill(o)
	if s.x == nil {
		s.x = &originExt{}
	}
	return s.x
}

// more returns the routes of o held beyond its entry (o.hasMore).
func (e *Engine) more(o *origin) *[]routeEntry { return &e.side.at(o.id).x.more }

// nbOf returns the neighbour of route r.
func (e *Engine) nbOf(r *routeEntry) *neighbour { return e.held[r.slot] }

// sel returns the selected next hop of o, nil when unreachable.
func (e *Engine) sel(o *origin) *neighbour {
	if !o.rtReachable {
		return nil
	}
	return e.held[o.selSlot]
}

// isSel reports whether nb is the selected next hop of o.
func (o *origin) isSel(nb *neighbour) bool {
	return o.rtReachable && o.selSlot == uint16(nb.slot)
}

// isBeaten reports whether some route has been better than o's selected
// one, by no more than the hysteresis, since it was last not.
func (e *Engine) isBeaten(o *origin) bool {
	x := e.xOf(o)
	return x != nil && x.beaten
}

// dropBeaten forgets that the selected route is beaten within the
// hysteresis.
func (e *Engine) dropBeaten(o *origin) {
	if x := e.xOf(o); x != nil {
		x.beaten = false
	}
}

// reqActive reports whether a seqno request for o is in progress.
func (e *Engine) reqActive(o *origin) bool {
	x := e.xOf(o)
	return x != nil && x.reqActive
}

// selRoute is the selected route of an origin without its next hop
// (Engine.sel).
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
func (e *Engine) routeOf(o *origin) Route {
	r := Route{Dest: e.nameOf(o), Metric: o.rtMetric, Hops: int(o.rtHops), Seqno: o.rtSeqno, Reachable: o.rtReachable}
	if o.rtReachable {
		r.NextHop = e.sel(o).name
	}
	return r
}

// toldFinite reports whether nb may hold a finite route from us for o.
func (o *origin) toldFinite(nb *neighbour) bool {
	if nb.slot >= maskSlots {
		return o.advertised
	}
	return o.told&(1<<nb.slot) != 0
}

// setTold records what nb was last told about o.
func (o *origin) setTold(nb *neighbour, finite bool) {
	if nb.slot >= maskSlots {
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
// through upsert, removeRoute and removeAt.
func (e *Engine) routes(o *origin) []routeEntry {
	if o.hasMore {
		return *e.more(o)
	}
	return o.inl[:o.nInl]
}

func (e *Engine) find(o *origin, nb *neighbour) int { return e.findSlot(o, uint16(nb.slot)) }

func (e *Engine) findSlot(o *origin, s uint16) int {
	rs := e.routes(o)
	for i := range rs {
		if rs[i].slot == s {
			return i
		}
	}
	return -1
}

func (e *Engine) upsert(o *origin, r routeEntry) *routeEntry {
	if i := e.findSlot(o, r.slot); i >= 0 {
		rs := e.routes(o)
		rs[i] = r
		return &rs[i]
	}
	switch {
	case o.hasMore:
		m := e.more(o)
		*m = append(*m, r)
		return &(*m)[len(*m)-1]
	case int(o.nInl) < len(o.inl):
		o.inl[o.nInl] = r
		o.nInl++
		return &o.inl[o.nInl-1]
	}
	// Room for a route from every neighbour (one each): a node with four
	// neighbours takes 64 bytes, where room for six took 96 and a
	// seventh neighbour's route 192 more.
	x := e.spill(o)
	x.more = append(make([]routeEntry, 0, max(len(o.inl)+1, len(e.nbrs))), o.inl[:]...)
	x.more = append(x.more, r)
	o.inl, o.nInl, o.hasMore = [len(o.inl)]routeEntry{}, 0, true
	return &x.more[len(x.more)-1]
}

// removeRoute removes nb's route for o, reporting whether there was one.
func (e *Engine) removeRoute(o *origin, nb *neighbour) bool {
	i := e.find(o, nb)
	if i < 0 {
		return false
	}
	e.removeAt(o, i)
	return true
}

// removeAt removes the i-th route (routes()), keeping the others in order.
func (e *Engine) removeAt(o *origin, i int) {
	if o.hasMore {
		m := e.more(o)
		*m = slices.Delete(*m, i, i+1)
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

func (e *Engine) total(r *routeEntry) Metric { return e.add(r.metric, e.held[r.slot].cost) }

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
	return e.total(r) < e.cfg.Infinity && e.usableFinite(o, r)
}

// usableFinite is usable for a route of finite total metric.
func (e *Engine) usableFinite(o *origin, r *routeEntry) bool {
	// Only a neighbour's route to itself does not expire (routeEntry.life:
	// LinkUp and handleUpdate make no other, and LinkDown removes a
	// neighbour's routes before its slot is given again), so that no
	// name is compared (reading the origin's at every selection was 0.5 %
	// of the instructions of a cold start at 1000 nodes).
	if !r.expiring() {
		return true
	}
	nb := e.held[r.slot]
	return !nb.leaf && r.hasSeqno() && o.feasible(r.seqno, r.metric)
}

// keepable reports whether r, a finite route that usableFinite refused,
// stays selected all the same: it is the route selected, from a transit
// neighbour, at the seqno of our feasibility distance, and its neighbour
// now advertises a higher metric than that distance, by less than
// keptRise. Keeping it is loop-free: the neighbour's feasibility
// distance is no worse than anything it ever advertised, so it stays
// strictly better than ours, which only moves to what we advertise
// through that neighbour (its metric plus a link cost of at least 1);
// a loop of next hops would need each one's distance strictly better
// than the next one's all the way round. Dropping the route instead cut
// this node and every node behind it off the origin until a new seqno
// came back from the origin, a round trip of requests along the whole
// path, tens of seconds where links take seconds, at every rise of a
// link cost on the way (TestRoutesStayWhileLinkCostsRise). A seqno
// request still goes out (reselect) so that the route becomes feasible
// again.
func (e *Engine) keepable(o *origin, r *routeEntry) bool {
	if !o.rtReachable || !o.selSeq || r.slot != o.selSlot || !r.hasSeqno() || !o.fdValid || r.seqno != o.fdSeqno {
		return false
	}
	nb := e.held[r.slot]
	return !nb.leaf && uint64(r.metric) < uint64(o.fdMetric)+keptRise(o.fdMetric, nb.cost)
}

// keptRise is how far above the feasibility distance fd the metric a
// selected next hop advertises may rise with the route kept (keepable):
// half of fd, as link costs follow round-trip times that swing by half
// on a loaded machine, and at least the link's cost. The route's metric
// thus stays below 3/2 fd plus two link costs (no counting to
// infinity: TestPropertyNodeDeath); a higher one is dropped, as an
// unfeasible route is.
func keptRise(fd, cost Metric) uint64 { return max(uint64(cost), uint64(fd)/2) }

// keptUnfeasible reports whether o's selected route is one kept though
// unfeasible (keepable).
func (e *Engine) keptUnfeasible(o *origin) bool {
	if !o.rtReachable || !o.selSeq {
		return false
	}
	i := e.findSlot(o, o.selSlot)
	return i >= 0 && !e.usableFinite(o, &e.routes(o)[i])
}

// addOrigin creates the table entry named by ref (ref.origin), or
// returns nil and counts a refusal when the table is full. The name must
// not alias a received message.
func (e *Engine) addOrigin(ref *attestation) *origin {
	if e.origins.len() >= e.cfg.MaxRoutes {
		e.stats.RefusedOrigins++
		return nil
	}
	var id uint32
	if n := len(e.freeIDs); n > 0 {
		id = e.freeIDs[n-1]
		e.freeIDs = e.freeIDs[:n-1]
	} else {
		id = e.side.add()
	}
	// Slabs grow with the table, from 4 entries to originSlab, so that a
	// small table stays small.
	o := e.side.place(id, ref, max(e.origins.len(), 4)) // zeroed
	o.rtMetric = e.cfg.Infinity
	e.origins.insert(e.origins.hash(ref.origin), o)
	e.originOrder = nil
	return o
}

// originSlab is the number of table entries allocated together
// (sideTable.place). 73 entries of 112 bytes fill 8,176 bytes of the
// allocator's 8,192-byte size class, with no header as they hold no
// pointer (TestOriginSlabFillsItsSizeClass).
const originSlab = 73

// reselect chooses the best usable route for o, keeping the current one
// unless another beats it by more than the hysteresis margin.
func (e *Engine) reselect(t time.Duration, o *origin) {
	if e.drains > 0 && e.reselectDrain(t, o) {
		return
	}
	var best *routeEntry
	var bestM Metric
	var cur *routeEntry
	// A finite route we cannot use, and the least metric of those: only
	// when it beats the route selected can betterUnfeasible find one (it
	// was a twentieth of a cold start's CPU time, for nothing in most
	// calls; called whenever there was an unfeasible route, 282 million
	// of the 11.8 billion instructions of a cold start at 1000 nodes).
	unfeasible := false
	var minUnf Metric
	kept := false // the route selected went unfeasible, and competes still
	// The least metric of the unfeasible routes from other neighbours
	// than the one selected (unfOther: there is one), for selectedLost.
	unfOther := false
	var minUnfOther Metric
	rs := e.routes(o)
	for i := range rs {
		r := &rs[i]
		m := e.total(r)
		if m >= e.cfg.Infinity {
			continue
		}
		if !e.usableFinite(o, r) {
			if !unfeasible || m < minUnf {
				minUnf = m
			}
			unfeasible = true
			if r.slot != o.selSlot && (!unfOther || m < minUnfOther) {
				unfOther, minUnfOther = true, m
			}
			if !e.keepable(o, r) {
				continue
			}
			kept = true
		}
		if o.rtReachable && r.slot == o.selSlot {
			cur = r
		}
		if best == nil || m < bestM || (m == bestM && e.nbOf(r).name < e.nbOf(best).name) {
			best, bestM = r, m
		}
	}
	if cur != nil && best != cur && cur.hasSeqno() && best.hasSeqno() && seqnoLess(best.seqno, cur.seqno) && !e.safeMove(o, best, bestM) {
		// The route selected carries a newer seqno than the better one,
		// whose metric is above the least this node advertised at that
		// seqno and above the route the nodes behind hold at it
		// (safeMove): they could not take it (a drain upstream
		// penalised the newer route, drain.go). Keep the newer route and
		// ask for its seqno through the better one's neighbour.
		e.dropBeaten(o)
		e.apply(t, o, cur)
		e.sendRequest(t, o, cur.seqno, []*neighbour{e.nbOf(best)})
		return
	}
	if cur == nil && o.rtReachable && o.selSeq {
		// The route selected is lost: did it leave a better one
		// unfeasible (damp.go)?
		e.selectedLost(t, o, e.sel(o), unfOther && (best == nil || minUnfOther < bestM))
	}
	if cur != nil && best != cur && uint64(bestM)+uint64(e.cfg.Hysteresis) >= uint64(e.total(cur)) {
		// Better, but within the margin: take the best route once the
		// selected one has stayed beaten for an update interval, by
		// whichever routes, so that routes still settle on the shortest
		// paths while jitter does not move them, and a route offered and
		// taken back in turn does not restart the wait.
		switch {
		case bestM >= e.total(cur):
			e.dropBeaten(o)
			best = cur
		case !e.isBeaten(o):
			x := e.ext(o)
			x.beaten, x.beatenSince = true, t
			e.watchOrigin(o, t+e.cfg.UpdateInterval)
			best = cur
		case t < e.xOf(o).beatenSince+e.cfg.UpdateInterval:
			best = cur
		default:
			e.dropBeaten(o)
		}
	} else {
		e.dropBeaten(o)
	}
	e.apply(t, o, best)
	// Better routes we cannot take because they are unfeasible, or the
	// route selected kept though unfeasible (keepable): ask the origin
	// for a new seqno so that they become feasible. (apply moves
	// neither the routes nor the feasibility distance.)
	if !unfeasible || o.rtReachable && minUnf >= o.rtMetric && !(kept && e.keptUnfeasible(o)) {
		return
	}
	if nbs := e.betterUnfeasible(o); len(nbs) > 0 {
		e.sendRequest(t, o, o.fdSeqno+1, nbs)
	}
}

// apply installs r (nil: unreachable) as the selected route of o, emitting
// events, triggered updates and seqno requests as needed.
func (e *Engine) apply(t time.Duration, o *origin, r *routeEntry) {
	// The metric of r selected, once: without a drain, its total
	// (selMetric as a call, twice, was 56 million instructions of a cold
	// start at 1000 nodes, where no link is drained).
	var m Metric
	if r != nil {
		m = e.total(r)
		if e.drains > 0 {
			m = e.selMetric(o, r)
		}
	}
	if r != nil && o.rtReachable && r.slot == o.selSlot && r.hasSeqno() == o.selSeq &&
		r.seqno == o.rtSeqno && uint32(r.hops)+1 == o.rtHops && m == o.rtMetric {
		// The selected route again, unchanged (half the calls of a cold
		// start at 1000 nodes): nothing moves, unless a seqno request
		// waits for it.
		if x := e.xOf(o); x == nil || !x.fwdValid && !x.reqActive {
			return
		}
	}
	old, oldSel := o.selected(), e.sel(o)
	oldSeq := o.selSeq
	nr := selRoute{metric: e.cfg.Infinity, seqno: old.seqno}
	o.selSlot, o.selSeq = 0, false
	if r != nil {
		o.selSlot, o.selSeq = r.slot, r.hasSeqno()
		nr = selRoute{metric: m, hops: uint32(r.hops) + 1, seqno: r.seqno, reachable: true}
	}
	switch {
	case nr.reachable && !old.reachable:
		e.reachable++
	case !nr.reachable && old.reachable:
		e.reachable--
	}
	o.setSelected(nr)
	x := e.xOf(o)
	if x != nil && (x.floorOn || len(x.marks) > 0) {
		e.dampApply(t, o, x, r, m)
	}
	// Retractions go out at once; they drive failover. So does a new
	// seqno that answers a request we forwarded (RFC 8966 §3.8.1.2), but
	// only to the neighbours that asked, and to every neighbour at most
	// once per origin per answerAllGap (seqhold.go); any other change of
	// seqno alone is not sent (see advertisedTo): nobody needs it, and
	// sending it would flood every bump to every node.
	answers := nr.reachable && o.selSeq && x != nil && x.fwdValid && !seqnoLess(nr.seqno, x.fwdSeqno)
	if answers {
		x.fwdValid = false
	}
	urgent := !nr.reachable && old.reachable || answers
	o.seqKnown = o.seqKnown || o.selSeq
	trigger := !nr.reachable && old.reachable
	if !nr.reachable {
		e.dropHolds(o) // nothing held is sent any more
	}
	switch {
	case old.reachable != nr.reachable:
		trigger = true
		kind := PeerUp
		if !nr.reachable {
			kind = PeerDown
			o.changedAt = t
			e.scheduleHousekeep(t + 2*e.cfg.RouteExpiry)
		}
		rt := e.routeOf(o)
		e.emit(Event{Kind: kind, Dest: rt.Dest, Reachable: nr.reachable, Route: rt})
	case !nr.reachable:
	case oldSel != e.sel(o) && oldSel.name != e.sel(o).name: // both reachable
		trigger = true
		rt := e.routeOf(o)
		e.emit(Event{Kind: NextHopChanged, Dest: rt.Dest, Reachable: true, Route: rt})
	case oldSeq != o.selSeq:
		trigger = true
	case absDiff(old.metric, nr.metric) > e.cfg.Hysteresis:
		trigger = true
	case old.hops != nr.hops:
		trigger = e.hopsDue(t, o)
	}
	switch {
	case trigger && o.advertisable():
		if nr.reachable && o.advertised && nr.seqno != o.advSeqno && nr.metric == o.advMetric && uint16(min(nr.hops, 0xffff)) == o.advHops {
			// Sent to all for another reason than its seqno (a next
			// hop changed) while what the others hold differs by the
			// seqno alone: the new seqno goes to every neighbour with
			// it (holdSeqno).
			e.ext(o).promote = true
		}
		if !urgent && nr.reachable && e.holdsNew(o) {
			e.holdNew(t, o) // a cheaper route may come next (coldhold.go)
		} else {
			e.triggerAll(o, urgent)
		}
		if answers {
			e.answered(x, nr.seqno)
		}
	case answers && o.advertisable():
		e.answer(t, o, x)
	}
	if nr.reachable && o.selSeq && x != nil && x.reqActive && !seqnoLess(nr.seqno, x.reqSeqno) {
		x.reqActive = false
	}
}

func absDiff(a, b Metric) Metric {
	if a > b {
		return a - b
	}
	return b - a
}

// isSelf reports whether en, received from nb, is about nb itself. While
// nb's own table entry is in the table, the entries are compared, not the
// names (the index holds one entry per name, and en.org is the entry of
// en's origin, nil if there is none): comparing the names of every update
// took 85 million instructions of a cold start at 1000 nodes.
func (nb *neighbour) isSelf(en *entry) bool {
	if s := nb.selfOrg; s != nil && !s.removed {
		return en.org == s
	}
	return en.origin == nb.name
}

// advertisable reports whether o may appear in our updates at all.
func (o *origin) advertisable() bool { return o.selSeq || o.advertised }

// handleUpdate processes one received update from nb.
func (e *Engine) handleUpdate(t time.Duration, nb *neighbour, en *entry) {
	// An origin in the table (en.org) is not Self.
	if en.org == nil && en.origin == e.cfg.Self {
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
	own := nb.isSelf(en) // nb's route to itself (decided once)
	if en.metric >= e.cfg.Infinity && !own {
		// A retraction. (A neighbour's route to itself stays while the
		// link is up: retracted, it is a drain, below.)
		if o != nil && e.removeRoute(o, nb) {
			e.reselect(t, o)
		}
		return
	}
	if !own && (en.hops == 0 || Metric(en.hops) > en.metric) {
		// Every link costs at least 1: a relay cannot be at distance 0,
		// nor below its hop count.
		e.stats.Implausible++
		return
	}
	if e.cfg.Certifier != nil && (o == nil || !o.attValid || seqnoLess(o.attSeq, en.seqno)) {
		// No verified attestation covers this seqno: the name or the
		// seqno was not issued by the origin, or its attestation was
		// lost or dropped unchecked (checkBudget).
		e.stats.Uncertified++
		if !e.renewAtChecked(o, nb, en) {
			return
		}
	}
	if own {
		// nb's own route retracted: nb drains the link (drain.go),
		// taken as its route to itself at that seqno (metric 0, below)
		// once the certifier covers it.
		e.peerDrainUpdate(t, nb, en.metric >= e.cfg.Infinity)
	}
	if o == nil {
		// A copy: en.origin may alias the message.
		if o = e.addOrigin(named(strings.Clone(en.origin))); o == nil {
			return
		}
	}
	r := routeEntry{slot: uint16(nb.slot), seqno: en.seqno, metric: en.metric, hops: en.hops}
	if !own {
		r.setExpiry(t, t+e.holdOf(nb))
		e.scheduleHousekeep(r.expiresAt(t))
	} else {
		r.metric = 0 // a node is at distance 0 from itself
	}
	e.upsert(o, r)
	if o.rtReachable && !o.hasExt && o.selSlot != uint16(nb.slot) && e.total(&r) > o.rtMetric {
		// Worse than the route selected, which stays the best (without
		// an ext, no route is a candidate within the hysteresis and no
		// request waits): reselect would change nothing. A third of
		// the updates of a cold start at 1000 nodes.
		return
	}
	e.reselect(t, o)
}
