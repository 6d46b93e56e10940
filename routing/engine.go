package routing

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
	"unsafe"
)

// Engine is the routing state machine of one node. It is not safe for
// concurrent use: one goroutine feeds it events and drains Ready.
type Engine struct {
	cfg   Config
	rng   *rand.Rand
	seqno uint16 // our own sequence number
	// selfEpoch is the epoch of seqno: Config.Epoch, plus one each time
	// seqno passed 0 (advanceSelf), or that of an attestation of ours
	// we jumped past.
	selfEpoch uint64
	// A request for a newer seqno, or an attestation of ours, that
	// arrived before raiseAt, the end of the gap after the last raise,
	// raises it then (raiseSelf).
	raiseAt  time.Duration
	raiseDue bool
	raiseTo  uint16 // the newest seqno asked for then
	raiseJmp bool   // raiseTo is past an attestation of ours: not capped
	raiseEp  uint64 // with raiseJmp: the epoch of raiseTo

	started bool
	epoch   time.Time     // first time seen; internal times are offsets from it
	last    time.Duration // latest time seen

	nbrs     map[string]*neighbour
	drains   int          // neighbours drained from either side (drain.go)
	nbrOrder []string     // sorted names of nbrs; nil when stale
	slots    []*neighbour // neighbours by slot; nil for a free slot
	selfHash uint64       // nameHash(Self)

	origins originIndex
	// reachable counts the entries of origins whose selected route is
	// reachable (Stats.Reachable), kept as selections change.
	reachable int
	// The parts of the table entries that hold pointers, by origin.id,
	// and the ids of removed entries, for reuse.
	side    sideTable
	freeIDs []uint32
	// zombies counts, for each removed entry still queued for some
	// neighbour (neighbour.pending), the lists that hold it: its id and
	// side entry are released when the last one lets it go, so that no
	// list names the next entry given that id. At most one per entry
	// removed, each held by at most one list per neighbour.
	zombies map[uint32]int
	// held is the neighbour of each slot while routes may name it: as
	// slots, and also while the routes of a neighbour whose link went
	// down are removed.
	held        []*neighbour
	originOrder []string // sorted names of origins; nil when stale

	periodicAt time.Duration
	hkValid    bool
	hkAt       time.Duration // lower bound of the next housekeeping need

	// Origins with a seqno request in progress or a candidate next hop,
	// checked at watchAt (at most their number, not the table, per
	// check: requests retry every few rounds after a failure).
	watch      []*origin
	watchValid bool
	watchAt    time.Duration

	// Our own attestation of seqno selfAttSeq (Config.Certifier).
	selfAtt      []byte
	selfAttSeq   uint16
	selfAttEp    uint64
	selfAttValid bool
	selfAttHeld  slotMask // bit i: the neighbour in slot i holds selfAtt

	sums []entry // scratch: a message's summaries
	// scratch: origins whose routes a newer attestation in the message
	// being received dropped (dropUncovered), reselected at its end
	reseat []*origin
	// scratch of handleSummaries, by bucket
	sumHave   []uint64
	sumCounts []uint16
	sumGood   []bool
	resendAsk []uint64                       // scratch of handleResends: buckets asked, a bit each
	intern    func([]byte) (string, *origin) // a received name, allocated only if new
	keysBuf   []string                       // scratch: sorted keys
	keyBuf    []byte                         // scratch: an attestation's key (attKey)
	// The Certifier if its verdicts are shared (cacheable), else nil.
	shared Certifier

	// The message being built (put): its encoding so far (in a buffer
	// of sendScratch, held during flush), entries, updates among them,
	// and neighbour.
	wBuf     []byte
	wVer     uint8 // its version: wireVersion if wTo reads it
	wCount   int
	wUpdates int
	wTo      string
	// Bytes and messages sent to wTo in this flush (Config.MaxBurstBytes).
	wBytes int
	wMsgs  int

	// First announcements held (coldhold.go), in the order of their
	// ends, and whether a non-leaf neighbour's link costs holdCost or
	// less (cheap; cheapValid: computed since the links last changed).
	coldHolds  []coldHold
	hopHolds   []coldHold // changes of hops alone held (hopsDue), in the order of their ends
	reqHolds   []coldHold // seqno requests held (holdRequest), in the order of their ends
	floorHolds []coldHold // routes sent at a floor (damp.go), in the order of their ends
	cheap      bool
	cheapValid bool

	outbox []Message // buffer of the output messages, reused (Ready)
	events outQueue[Event]
	stats  Stats
}

// New returns an engine for cfg after applying defaults and validating it.
// Errors wrap ErrInvalidConfig.
func New(cfg Config) (*Engine, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(uint64(c.Seed), 0x636d657368))
	e := &Engine{
		cfg:       c,
		rng:       rng,
		seqno:     uint16(rng.Uint32()),
		selfEpoch: c.Epoch,
		selfHash:  nameHash(c.Self),
		nbrs:      make(map[string]*neighbour),
	}
	if cacheable(c.Certifier) {
		e.shared = c.Certifier
	}
	e.origins = newOriginIndex(&e.side)
	e.intern = func(b []byte) (string, *origin) {
		if s := e.origins.getBytes(b); s != nil {
			return s.ref.origin, e.side.entry(s)
		}
		if string(b) == e.cfg.Self {
			return e.cfg.Self, nil
		}
		// A name not in the table aliases the message (b is not empty):
		// the entry created for it takes the copy the process shares
		// (handleAttest) or a copy of its own (handleUpdate), and nothing
		// else keeps it beyond Receive.
		return unsafe.String(&b[0], len(b)), nil
	}
	return e, nil
}

// Config returns the configuration in effect (defaults applied; Hysteresis
// is the effective margin, 0 meaning none).
func (e *Engine) Config() Config { return e.cfg }

// at converts a caller-supplied time into an internal offset.
func (e *Engine) at(now time.Time) time.Duration {
	if !e.started {
		e.started = true
		e.epoch = now
		e.periodicAt = e.nextPeriod(0)
	}
	t := now.Sub(e.epoch)
	e.last = max(e.last, t)
	return t
}

// nextPeriod is the next periodic refresh after t, jittered down by up to
// 1/8 of the interval so neighbours do not synchronise.
func (e *Engine) nextPeriod(t time.Duration) time.Duration {
	iv := e.cfg.UpdateInterval
	j := iv / 8
	if j > 0 {
		j = time.Duration(e.rng.Int64N(int64(j)))
	}
	return t + iv - j
}

// LinkUp reports a link to neighbour with the given cost (clamped to at
// least 1). The neighbour becomes reachable directly at once. A leaf
// neighbour is never used as transit. Calling LinkUp for a neighbour that is
// already up (a new link replaced the old one) updates its cost and leaf
// flag and sends it the whole table again. If the table is full
// (Config.MaxRoutes) the neighbour is not added as a destination (counted
// in Stats.RefusedOrigins), but messages still flow over the link.
func (e *Engine) LinkUp(now time.Time, neighbour string, cost Metric, leaf bool) {
	t := e.at(now)
	if neighbour == "" || neighbour == e.cfg.Self || len(neighbour) > MaxNameLen {
		return
	}
	if nb, ok := e.nbrs[neighbour]; ok {
		e.cheapValid = false
		if leaf && !nb.leaf {
			nb.leaf = true
			e.dropTransit(t, nb)
		}
		nb.leaf = leaf
		e.setCost(t, nb, cost)
		// A new link to a neighbour we had: the other end may be new to
		// it (restarted, or holding the link until our table shows we
		// admitted it), so it gets the whole table again. It may also
		// be another release: it gets attested updates again only once
		// it sends a message of wireVersion.
		nb.pendingAll = true
		nb.reads4, nb.hello, nb.spoke = false, true, false
		e.flush(t)
		return
	}
	slot := slices.Index(e.slots, nil)
	if slot < 0 {
		if len(e.slots) > math.MaxUint16 {
			return // routes name a neighbour by a 16-bit slot
		}
		slot = len(e.slots)
		e.slots = append(e.slots, nil)
	}
	nb := newNeighbour(neighbour, e.clampCost(cost), leaf, slot)
	e.cheapValid = false
	e.slots[slot] = nb
	if slot == len(e.held) {
		e.held = append(e.held, nil)
	}
	e.held[slot] = nb
	e.nbrs[neighbour] = nb
	e.nbrOrder = nil
	o := e.origins.get(neighbour)
	if o == nil {
		o = e.addOrigin(named(neighbour))
	}
	if o != nil {
		nb.selfOrg = o
		e.upsert(o, routeEntry{slot: uint16(slot), life: routeImplicit})
		e.reselect(t, o)
	}
	e.flush(t)
}

// LinkCost reports a new cost for an existing link.
func (e *Engine) LinkCost(now time.Time, neighbour string, cost Metric) {
	t := e.at(now)
	if nb, ok := e.nbrs[neighbour]; ok {
		e.setCost(t, nb, cost)
		e.flush(t)
	}
}

// LinkDown reports that the link to neighbour is gone. Every route through
// it is withdrawn at once; alternates take over if feasible, otherwise
// retractions and seqno requests go out immediately.
func (e *Engine) LinkDown(now time.Time, neighbour string) {
	t := e.at(now)
	nb, ok := e.nbrs[neighbour]
	if !ok {
		return
	}
	delete(e.nbrs, neighbour)
	e.cheapValid = false
	e.forgetDrain(nb)
	e.clearPending(nb) // frees the slot's pend bits for the next neighbour
	e.nbrOrder = nil
	e.slots[nb.slot] = nil
	e.setAttHeld(nb, e.cfg.Self, false)
	for _, name := range e.sortedOrigins() {
		o := e.origins.get(name)
		o.setTold(nb, false)
		e.setAttHeld(nb, name, false)
		e.forgetHolds(o, nb)
		if e.removeRoute(o, nb) || o.isSel(nb) {
			e.reselect(t, o)
		}
	}
	e.held[nb.slot] = nil // no route names it any more
	e.flush(t)
}

func (e *Engine) clampCost(c Metric) Metric {
	if c == 0 {
		return 1
	}
	return min(c, e.cfg.Infinity)
}

func (e *Engine) setCost(t time.Duration, nb *neighbour, cost Metric) {
	cost = e.clampCost(cost)
	if cost == nb.cost {
		return
	}
	nb.cost = cost
	e.cheapValid = false
	for _, name := range e.sortedOrigins() {
		if o := e.origins.get(name); e.find(o, nb) >= 0 {
			e.reselect(t, o)
		}
	}
}

// dropTransit removes routes a neighbour that became a leaf advertised for
// nodes other than itself.
func (e *Engine) dropTransit(t time.Duration, nb *neighbour) {
	for _, name := range e.sortedOrigins() {
		if o := e.origins.get(name); name != nb.name && e.removeRoute(o, nb) {
			e.reselect(t, o)
		}
	}
}

// recvScratch holds the buffers Receive decodes a message into (*[]entry,
// zero beyond their length), shared by the engines of a process: a
// message's entries are dropped before Receive returns, so one buffer per
// goroutine receiving at a time is enough, where a buffer of its own at
// every engine (5.6 KB for 64 entries of 88 bytes) took 7 MB of live heap
// at 1000 engines.
var recvScratch = sync.Pool{New: func() any { return new([]entry) }}

// Receive processes a routing message from neighbour from. A malformed
// message, or one without entries (which no engine sends), returns an
// error wrapping ErrMalformed and changes nothing; a message from a node
// without a link returns ErrUnknownNeighbour; a message beyond the
// neighbour's receive budget (recvbudget.go: four times what the engine's
// own send rules let it send) is refused before it is decoded, counted in
// Stats.OverBudget, and returns ErrOverBudget.
//
// The updates and requests it causes are not sent by Receive but by the
// next Tick, and NextTick is then no later than now (or than the triggered
// update rate limit): deliver every message at hand, then Tick, and a
// burst of changes goes to each neighbour as one batch.
func (e *Engine) Receive(now time.Time, from string, payload []byte) error {
	t := e.at(now)
	nb, ok := e.nbrs[from]
	if !ok {
		e.stats.UnknownNeighbour++
		return fmt.Errorf("message from %q: %w", from, ErrUnknownNeighbour)
	}
	// Refused unread, with an error formatted only if it is printed: a
	// flood of such messages costs a comparison each.
	if !e.admit(t, nb, len(payload)) {
		e.stats.OverBudget++
		return &refusal{nb.name, ErrOverBudget}
	}
	if len(payload) == headerLen && payload[1] == 0 && payload[2] == 0 {
		if payload[0] == wireVersion {
			// A hello: nb reads attested updates.
			e.stats.MessagesIn++
			nb.reads4, nb.spoke = true, true
			return nil
		}
		if payload[0] == wireBase {
			e.stats.Malformed++
			return &refusal{nb.name, errEmpty}
		}
	}
	scratch := recvScratch.Get().(*[]entry)
	entries, err := decodeInto(*scratch, payload, e.cfg.MaxRoutesPerMessage, e.intern)
	if err != nil {
		recvScratch.Put(scratch) // decodeInto left it zero
		e.stats.Malformed++
		return fmt.Errorf("message from %q: %w", from, err)
	}
	e.stats.MessagesIn++
	nb.spoke = true
	if payload[0] == wireVersion {
		nb.reads4 = true
	}
	sums := e.sums[:0]
	resends := false
	// The table entry the last attestation created: the update that
	// follows it names the same origin, which did not exist when the
	// message was decoded.
	var created *origin
	var epochOf func([]byte) uint64
	if e.cfg.Certifier != nil {
		epochOf = e.cfg.Certifier.Epoch
	}
	supersede(entries, epochOf) // only the newest attestation of an origin is checked
	// By pointer: an entry is 88 bytes, copied at each call otherwise.
	for i := range entries {
		en := &entries[i]
		switch en.kind {
		case kindUpdate:
			e.stats.UpdatesIn++
			if en.org == nil && created != nil && e.nameOf(created) == en.origin {
				en.org = created
			}
			e.handleUpdate(t, nb, en)
		case kindAttest:
			if o := e.handleAttest(t, nb, en); o != nil {
				created = o
			}
		case kindAttUpdate:
			// The attestation, then the update it covers.
			e.stats.UpdatesIn++
			if o := e.handleAttest(t, nb, en); o != nil && en.org == nil {
				en.org = o
			}
			e.handleUpdate(t, nb, en)
		case kindSummary:
			sums = append(sums, *en)
		case kindResend:
			e.stats.RequestsIn++
			resends = e.admitResend(nb, *en) || resends
		default:
			e.stats.RequestsIn++
			e.handleRequest(t, nb, *en)
		}
	}
	// After the whole message, so that the updates following an
	// attestation are in the table: reselecting at once would lose the
	// origin between the two.
	for i, o := range e.reseat {
		e.reseat[i] = nil
		e.reselect(t, o)
	}
	e.reseat = e.reseat[:0]
	if resends {
		e.handleResends(nb)
	}
	if len(sums) > 0 {
		e.handleSummaries(t, nb, sums)
		clear(sums)
		e.sums = sums[:0]
	}
	// The scratch entries alias payload: drop them, or the scratch keeps
	// the last message alive. (decodeInto also needs them zero.)
	clear(entries)
	*scratch = entries[:0]
	recvScratch.Put(scratch)
	// What this message changed goes out at the next Tick, which
	// NextTick puts no later than now: the messages a caller has at hand
	// are all received first, and a burst of changes leaves as one batch
	// per neighbour, with the best routes of the whole burst. Flushing
	// after each message sent the first one's changes at once and held
	// the others' for the rate limit, so neighbours learnt worse routes
	// first and better ones a round later.
	return nil
}

// originOf returns the table entry of en's origin, or nil. Entries are
// removed only by housekeeping, never while a message is processed, so the
// entry found when decoding is still the one in the table.
func (e *Engine) originOf(en *entry) *origin {
	if en.org != nil {
		return en.org
	}
	return e.origins.get(en.origin)
}

// Tick advances timers: periodic refreshes, rate-limited triggered updates,
// route expiry and request retries. Call it at NextTick (calling it more
// often is harmless).
func (e *Engine) Tick(now time.Time) {
	t := e.at(now)
	if t >= e.periodicAt {
		e.refreshDiffs()
		for _, nb := range e.nbrs {
			nb.summaryDue = true
		}
		e.periodicAt = e.nextPeriod(t)
	}
	if e.hkValid && t >= e.hkAt {
		e.housekeep(t)
	}
	if e.watchValid && t >= e.watchAt {
		e.checkWatched(t)
	}
	if e.raiseDue && t >= e.raiseAt {
		if e.raiseJmp && attNewer(e.raiseEp, e.raiseTo, e.selfEpoch, e.seqno) || !e.raiseJmp && seqnoLess(e.seqno, e.raiseTo) {
			e.raiseSelf(t, e.raiseEp, e.raiseTo, e.raiseJmp)
		} else {
			e.raiseDue = false // the seqno moved past it meanwhile
		}
	}
	e.releaseHolds(t)
	e.releaseHopHolds(t)
	e.releaseRequests(t)
	e.releaseFloors(t)
	e.flush(t)
}

// NextTick returns when Tick must next be called, or the zero time if the
// engine has seen no event yet.
func (e *Engine) NextTick() time.Time {
	if !e.started {
		return time.Time{}
	}
	next := e.periodicAt
	if e.hkValid && e.hkAt < next {
		next = e.hkAt
	}
	if e.watchValid && e.watchAt < next {
		next = e.watchAt
	}
	if e.raiseDue && e.raiseAt < next {
		next = e.raiseAt
	}
	if len(e.coldHolds) > 0 && e.coldHolds[0].at < next {
		next = e.coldHolds[0].at
	}
	if len(e.hopHolds) > 0 && e.hopHolds[0].at < next {
		next = e.hopHolds[0].at
	}
	if len(e.reqHolds) > 0 && e.reqHolds[0].at < next {
		next = e.reqHolds[0].at
	}
	if len(e.floorHolds) > 0 && e.floorHolds[0].at < next {
		next = e.floorHolds[0].at
	}
	for _, nb := range e.nbrs {
		if len(nb.requests) > 0 || len(nb.resends) > 0 || nb.ownAttDue {
			next = min(next, e.last) // due now (flush)
		}
		if at, ok := e.batchAt(nb); ok {
			next = min(next, max(at, e.last)) // at or before e.last: due now
		}
	}
	return e.epoch.Add(next)
}

// Pending reports whether the engine holds updates or requests that it
// has not sent yet: what a Receive caused (it goes out at the next Tick)
// and what the triggered-update rate limit holds (at a later Tick), the
// first announcements of new destinations held and changes of hops alone
// held (coldhold.go), seqno requests held to the end of a window
// (request.go), routes sent at the metric sent before an improvement
// until it held (damp.go), and a raise of our own seqno that a request
// asked for within the gap after the last one.
// (Periodic refreshes, route expiry and request retries are not counted.)
func (e *Engine) Pending() bool {
	if e.raiseDue || len(e.coldHolds) > 0 || len(e.hopHolds) > 0 || len(e.reqHolds) > 0 || len(e.floorHolds) > 0 {
		return true
	}
	for _, nb := range e.nbrs {
		if nb.pendingAll || nb.hasPending() || len(nb.repair) > 0 || len(nb.requests) > 0 || len(nb.resends) > 0 || nb.ownAttDue {
			return true
		}
	}
	return false
}

// Ready returns the pending outputs and forgets them. The Events slice
// is the engine's own buffer, reused by the next call that emits one:
// consume it (or copy what must be kept) before calling the engine
// again. Messages and their payloads are the caller's.
func (e *Engine) Ready() Ready {
	// Events are handed out as they are, from a buffer kept between
	// calls, so that a call allocates none: a cold start at 1000 nodes
	// emitted 1.7 million events, and handing them out in fresh chunks
	// allocated 132 MB that the caller dropped at once. Messages are
	// handed out as an exact-size copy, so that the engine keeps no
	// payload alive once the caller is done with it.
	r := Ready{Messages: clip(e.outbox), Events: e.events.take()}
	e.outbox = reuse(e.outbox)
	return r
}

// clip returns a copy of s that holds exactly its elements (nil if none).
func clip[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// reuse empties buf for the next outputs, dropping its references; a
// buffer grown beyond a few hundred elements by a burst is let go.
func reuse[T any](buf []T) []T {
	if cap(buf) > 512 {
		return nil
	}
	clear(buf)
	return buf[:0]
}

// maxKeptOut bounds the outputs a buffer keeps room for between calls (10
// KB of events at most per engine): a buffer grown beyond by a burst goes
// with the caller.
const maxKeptOut = 128

// outQueue gathers outputs in a buffer handed out by take and reused by
// the first push after it (Ready's contract), so that steady outputs
// allocate nothing. take clips the capacity of what it hands out, so
// that a caller's append copies instead of writing into the buffer.
type outQueue[T any] struct {
	buf   []T
	taken bool // buf was handed out: the next push starts over
}

func (q *outQueue[T]) len() int {
	if q.taken {
		return 0
	}
	return len(q.buf)
}

func (q *outQueue[T]) push(v T) {
	if q.taken {
		clear(q.buf) // drop the references of the outputs handed out
		q.buf, q.taken = q.buf[:0], false
	}
	q.buf = append(q.buf, v)
}

// take returns the pending outputs (nil if none) and forgets them.
func (q *outQueue[T]) take() []T {
	if q.len() == 0 {
		return nil
	}
	out := q.buf[:len(q.buf):len(q.buf)]
	q.taken = true
	if cap(q.buf) > maxKeptOut {
		q.buf, q.taken = nil, false // a burst grew it: let it go with the caller
	}
	return out
}

// HasReady reports whether Ready would return anything.
func (e *Engine) HasReady() bool { return len(e.outbox) > 0 || e.events.len() > 0 }

// Lookup returns the route to dest and whether dest is reachable. For Self
// it returns a reachable route with metric 0 and no next hop.
func (e *Engine) Lookup(dest string) (Route, bool) {
	if dest == e.cfg.Self {
		return Route{Dest: dest, Seqno: e.seqno, Reachable: true}, true
	}
	o := e.origins.get(dest)
	if o == nil {
		return Route{Dest: dest, Metric: e.cfg.Infinity}, false
	}
	return e.routeOf(o), o.rtReachable
}

// Known reports whether the table holds an entry for dest, reachable or
// not (a lost route is kept for two route expiry periods).
func (e *Engine) Known(dest string) bool {
	return e.origins.get(dest) != nil
}

// NextHop returns the neighbour to forward to for dest, and whether dest
// is reachable. It is the cheap form of Lookup for forwarding.
func (e *Engine) NextHop(dest string) (string, bool) {
	if o := e.origins.get(dest); o != nil && o.rtReachable {
		return e.sel(o).name, true
	}
	return "", false
}

// NextHops returns the neighbours through which dest can be reached without
// risk of a loop: the selected next hop first, then feasible alternates by
// increasing metric. It is empty when dest is unreachable (or is Self).
func (e *Engine) NextHops(dest string) []string {
	o := e.origins.get(dest)
	if o == nil || !o.rtReachable {
		return nil
	}
	alts := e.byMetric(o, func(r *routeEntry) bool { return r.slot != o.selSlot && e.usable(o, r) })
	return append([]string{e.sel(o).name}, alts...)
}

// byMetric returns the neighbours of o's routes that keep accepts, by
// increasing total metric, then name.
func (e *Engine) byMetric(o *origin, keep func(*routeEntry) bool) []string {
	type alt struct {
		name   string
		metric Metric
	}
	var alts []alt
	rs := e.routes(o)
	for i := range rs {
		if r := &rs[i]; keep(r) {
			alts = append(alts, alt{e.nbOf(r).name, e.total(r)})
		}
	}
	slices.SortFunc(alts, func(a, b alt) int {
		if a.metric != b.metric {
			return cmp.Compare(a.metric, b.metric)
		}
		return cmp.Compare(a.name, b.name)
	})
	out := make([]string, len(alts))
	for i, a := range alts {
		out[i] = a.name
	}
	return out
}

// Advertisers returns the neighbours that advertised a finite route to
// dest, feasible or not, by increasing metric (leaf neighbours only for
// their own name). Unlike NextHops it may include routes that could loop:
// it is for a caller that must avoid a next hop routing still likes (one
// whose path stopped forwarding) and can bound the attempt itself.
func (e *Engine) Advertisers(dest string) []string {
	o := e.origins.get(dest)
	if o == nil {
		return nil
	}
	return e.byMetric(o, func(r *routeEntry) bool {
		return e.total(r) < e.cfg.Infinity && (!e.nbOf(r).leaf || e.nbOf(r).name == dest)
	})
}

// Announced reports whether neighbour, a neighbour of this node, spoke
// routing over its link: it sent a message this engine decoded (a hello,
// which a node holding the link from its engine sends, included) since
// the link came up, or advertised its own route (feasible or not,
// retracted since or not). Until then its route is the implicit one
// LinkUp made, and routing has learnt nothing from it. A message counts
// though its routes do not fit a full table (MaxRoutes).
func (e *Engine) Announced(neighbour string) bool {
	nb, ok := e.nbrs[neighbour]
	if !ok {
		return false
	}
	if nb.spoke || nb.selfOrg == nil {
		return nb.spoke
	}
	i := e.find(nb.selfOrg, nb)
	return i >= 0 && e.routes(nb.selfOrg)[i].hasSeqno()
}

// Detours returns the neighbours other than dest that advertise a
// finite route to dest, feasible or not, sorted. With poison reverse a
// neighbour whose next hop toward dest is this node advertises it as
// unreachable, so each of them reaches dest by a next hop of its own: a
// hint that closing this node's link to dest would not cut dest off.
func (e *Engine) Detours(dest string) []string {
	o := e.origins.get(dest)
	if o == nil {
		return nil
	}
	var out []string
	rs := e.routes(o)
	for i := range rs {
		r := &rs[i]
		if e.nbOf(r).name != dest && r.hasSeqno() && r.metric < e.cfg.Infinity {
			out = append(out, e.nbOf(r).name)
		}
	}
	slices.Sort(out)
	return out
}

// Routes returns every destination in the table (reachable or still being
// withdrawn), sorted by Dest. Self is not included.
func (e *Engine) Routes() []Route {
	out := make([]Route, 0, e.origins.len())
	for _, name := range e.sortedOrigins() {
		out = append(out, e.routeOf(e.origins.get(name)))
	}
	return out
}

// Neighbours returns the names of neighbours with a link up, sorted.
func (e *Engine) Neighbours() []string { return slices.Clone(e.sortedNbrs()) }

// Stats returns the counters.
func (e *Engine) Stats() Stats {
	s := e.stats
	s.Destinations = e.origins.len()
	s.Reachable = e.reachable
	return s
}
