package routing

import (
	"bytes"
	"maps"
	"slices"
	"time"
)

// triggerAll schedules a triggered update for o (nil: Self) to every
// neighbour. Urgent updates (retractions and new seqnos, which drive
// failover and happen once per event) are held back by a tenth of the rate
// limit only.
func (e *Engine) triggerAll(o *origin, urgent bool) {
	if e.cfg.Leaf && o != nil {
		return
	}
	for _, nb := range e.slots {
		if nb != nil {
			nb.queue(o)
			nb.urgent = nb.urgent || urgent
		}
	}
}

// queue adds o (nil: Self) to nb's pending updates.
func (nb *neighbour) queue(o *origin) {
	switch {
	case o == nil:
		nb.pendSelf = true
		return
	case nb.slot < maskSlots:
		if o.pend&(1<<nb.slot) != 0 {
			return
		}
		o.pend |= 1 << nb.slot
	default:
		if _, ok := nb.pendSet[o]; ok {
			return
		}
		if nb.pendSet == nil {
			nb.pendSet = make(map[*origin]struct{})
		}
		nb.pendSet[o] = struct{}{}
	}
	nb.pending = append(nb.pending, o)
}

// maxKeptPending is the capacity of a neighbour's pending list always
// kept for the next updates; a larger one is kept while it is used by a
// quarter. A cold start queues most of the table for every neighbour:
// kept afterwards, those lists held 24 MB at 1000 nodes.
const maxKeptPending = 256

// hasPending reports whether updates are queued for nb.
func (nb *neighbour) hasPending() bool { return nb.pendSelf || len(nb.pending) > 0 }

// clearPending empties nb's pending updates.
func (nb *neighbour) clearPending() {
	if nb.slot < maskSlots {
		for _, o := range nb.pending {
			o.pend &^= 1 << nb.slot
		}
	}
	n := len(nb.pending)
	clear(nb.pending)
	nb.pending = nb.pending[:0]
	if cap(nb.pending) > maxKeptPending && n < cap(nb.pending)/4 {
		nb.pending = nil // grown by a burst that is over: let it go
	}
	clear(nb.pendSet)
	nb.pendSelf = false
}

func (e *Engine) emit(ev Event) {
	if e.events.len() >= 2*e.cfg.MaxRoutes+64 {
		e.stats.DroppedEvents++
		return
	}
	e.events.push(ev)
}

// sortedNbrs and sortedOrigins return cached sorted key lists, so that
// every output is deterministic.
func (e *Engine) sortedNbrs() []string {
	if e.nbrOrder == nil {
		e.nbrOrder = slices.Sorted(maps.Keys(e.nbrs))
	}
	return e.nbrOrder
}

func (e *Engine) sortedOrigins() []string {
	if e.originOrder == nil {
		order := e.originOrder[:0:0]
		for o := range e.origins.all() {
			order = append(order, e.nameOf(o))
		}
		slices.Sort(order)
		e.originOrder = order
	}
	return e.originOrder
}

// flush turns pending requests and updates into messages, honouring the
// per-neighbour rate limit for triggered updates.
func (e *Engine) flush(t time.Duration) {
	for _, name := range e.sortedNbrs() {
		nb := e.nbrs[name]
		e.begin(nb.name)
		if len(nb.requests) > 0 {
			for _, o := range slices.Sorted(maps.Keys(nb.requests)) {
				e.put(nb.requests[o])
			}
			e.stats.RequestsOut += uint64(len(nb.requests))
			clear(nb.requests)
		}
		if len(nb.resends) > 0 {
			for _, en := range nb.resends {
				e.put(en)
			}
			e.stats.RequestsOut += uint64(len(nb.resends))
			nb.resends = nb.resends[:0]
		}
		due := nb.pendingAll || nb.summaryDue || !nb.sentOnce || t >= nb.lastSent+e.nextGap(nb)
		if due && (nb.pendingAll || nb.summaryDue || nb.hasPending() || len(nb.repair) > 0) {
			e.updates(t, nb)
			if nb.summaryDue {
				e.summaries(nb)
			}
			nb.lastSent, nb.sentOnce = t, true
			nb.pendingAll, nb.summaryDue, nb.urgent = false, false, false
			nb.clearPending()
			clear(nb.repair)
		}
		e.end()
	}
}

// Output messages are encoded as their entries are produced (put), into
// one buffer kept between calls: each message is then copied out at its
// length (no two queued messages share memory). (Gathering a neighbour's
// entries first and encoding them afterwards held up to 256 entries of
// 88 bytes per engine and walked them three times.)

// begin starts the messages to neighbour to.
func (e *Engine) begin(to string) {
	e.wTo = to
	e.wBuf = appendHeader(e.wBuf[:0])
	e.wCount, e.wUpdates = 0, 0
}

// put adds en to the message being built, first sending that message if
// en would not fit in it (Config.MaxRoutesPerMessage, maxMessageBytes).
func (e *Engine) put(en entry) {
	if e.wCount > 0 && (e.wCount == e.cfg.MaxRoutesPerMessage || len(e.wBuf)+entrySize(en) > maxMessageBytes) {
		e.end()
	}
	e.wBuf = appendEntry(e.wBuf, en)
	e.wCount++
	if en.kind == kindUpdate {
		e.wUpdates++
	}
}

// end sends the message being built, if it holds entries, and starts the
// next one to the same neighbour.
func (e *Engine) end() {
	if e.wCount > 0 {
		setCount(e.wBuf, e.wCount)
		e.sendMessage(e.wTo, bytes.Clone(e.wBuf), e.wUpdates)
	}
	if cap(e.wBuf) > maxKeptMessageBuf {
		e.wBuf = nil // a message of large attestations grew it
	}
	e.begin(e.wTo)
}

// maxKeptMessageBuf bounds the message buffer kept between messages: a
// message of 64 updates with attestations takes about 5 KB.
const maxKeptMessageBuf = 16 << 10

// sortedKeys returns the keys of m sorted, in a buffer reused by the next
// call.
func (e *Engine) sortedKeys(m map[string]struct{}) []string {
	k := e.keysBuf[:0]
	for s := range m {
		k = append(k, s)
	}
	slices.Sort(k)
	e.keysBuf = k
	return k
}

// updates puts the updates due to nb.
func (e *Engine) updates(t time.Duration, nb *neighbour) {
	if nb.pendingAll {
		e.advert(t, nb, nil, false)
		if !e.cfg.Leaf {
			for _, name := range e.sortedOrigins() {
				e.advert(t, nb, e.origins.get(name), false)
			}
		}
		return
	}
	if _, ok := nb.repair[e.cfg.Self]; nb.pendSelf && !ok {
		e.advert(t, nb, nil, false)
	}
	// In the order queued: every path that queues updates visits origins
	// in a reproducible order (message order, or sorted), so runs are.
	for _, o := range nb.pending {
		if o.removed {
			continue
		}
		if _, ok := nb.repair[e.nameOf(o)]; len(nb.repair) == 0 || !ok {
			e.advert(t, nb, o, false)
		}
	}
	for _, name := range e.sortedKeys(nb.repair) {
		if name == e.cfg.Self {
			e.advert(t, nb, nil, true)
		} else if o := e.origins.get(name); o != nil {
			e.advert(t, nb, o, true)
		}
	}
}

// advert puts what we tell nb about o (nil: Self), if anything,
// and maintains the feasibility distance. A retraction goes only to a
// neighbour that was told a finite route, unless repair is set (nb asked
// for the route again): then any route advertised and lost within the
// last route expiry period is retracted.
func (e *Engine) advert(t time.Duration, nb *neighbour, o *origin, repair bool) {
	if o == nil {
		e.attest(nb, nil)
		e.put(entry{kind: kindUpdate, origin: e.cfg.Self, seqno: e.seqno})
		return
	}
	if e.cfg.Leaf {
		return
	}
	name := e.nameOf(o)
	retract := entry{kind: kindUpdate, origin: name, seqno: o.rtSeqno, metric: e.cfg.Infinity}
	told := o.toldFinite(nb)
	switch {
	case !o.rtReachable:
		// A repair retracts for one expiry period so lost messages do
		// not leave neighbours with stale routes through us.
		if repair && (!o.advertised || t >= o.lostAt+e.cfg.RouteExpiry) || !repair && !told {
			return
		}
		o.setTold(nb, false)
		e.put(retract)
		return
	case !o.selSeq:
		return // a fresh neighbour's route, until its first update
	case o.isSel(nb):
		// Poison reverse: nb is our next hop, it cannot use us.
		if repair && !o.advertised || !repair && !told {
			return
		}
		o.setTold(nb, false)
		e.put(retract)
		return
	}
	s, m := o.rtSeqno, o.rtMetric
	if !o.fdValid || seqnoLess(o.fdSeqno, s) || (s == o.fdSeqno && m < o.fdMetric) {
		o.fdValid, o.fdSeqno, o.fdMetric = true, s, m
	}
	h := uint16(min(o.rtHops, 0xffff))
	if o.advertised && (o.advSeqno != s || o.advMetric != m || o.advHops != h) {
		// What every neighbour holds from us moves (advertisedTo):
		// queue it for all, if this is not already that.
		e.triggerAll(o, false)
	}
	o.advertised = true
	o.setTold(nb, true)
	o.advSeqno, o.advMetric, o.advHops = s, m, h
	e.attest(nb, o)
	e.put(entry{kind: kindUpdate, origin: name, seqno: s, metric: m, hops: h})
}

// nextGap is how long after the last batch nb may get the next one:
// urgent updates wait a tenth of the triggered-update interval, enough to
// coalesce a burst of retractions or new seqnos into few messages.
func (e *Engine) nextGap(nb *neighbour) time.Duration {
	if nb.urgent {
		return e.cfg.MinTriggeredInterval / 10
	}
	return e.cfg.MinTriggeredInterval
}

// sendMessage queues one message to neighbour to, carrying updates
// updates, unless the output queue is full.
func (e *Engine) sendMessage(to string, payload []byte, updates int) {
	limit := 1024 + len(e.nbrs)*(e.cfg.MaxRoutes/e.cfg.MaxRoutesPerMessage+2)*4
	if len(e.outbox) >= limit {
		e.stats.DroppedMessages++
		return
	}
	e.outbox = append(e.outbox, Message{To: to, Payload: payload})
	e.stats.MessagesOut++
	e.stats.UpdatesOut += uint64(updates)
}
