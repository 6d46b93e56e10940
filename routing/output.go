package routing

import (
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
	case nb.slot < 64:
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

// hasPending reports whether updates are queued for nb.
func (nb *neighbour) hasPending() bool { return nb.pendSelf || len(nb.pending) > 0 }

// clearPending empties nb's pending updates.
func (nb *neighbour) clearPending() {
	if nb.slot < 64 {
		for _, o := range nb.pending {
			o.pend &^= 1 << nb.slot
		}
	}
	clear(nb.pending)
	nb.pending = nb.pending[:0]
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
			order = append(order, o.name)
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
		batch := e.batch[:0]
		if len(nb.requests) > 0 {
			for _, o := range slices.Sorted(maps.Keys(nb.requests)) {
				batch = append(batch, nb.requests[o])
			}
			e.stats.RequestsOut += uint64(len(nb.requests))
			clear(nb.requests)
		}
		if len(nb.resends) > 0 {
			batch = append(batch, nb.resends...)
			e.stats.RequestsOut += uint64(len(nb.resends))
			nb.resends = nb.resends[:0]
		}
		due := nb.pendingAll || nb.summaryDue || !nb.sentOnce || t >= nb.lastSent+e.nextGap(nb)
		if due && (nb.pendingAll || nb.summaryDue || nb.hasPending() || len(nb.repair) > 0) {
			batch = e.updates(t, nb, batch)
			if nb.summaryDue {
				batch = e.appendSummaries(nb, batch)
			}
			nb.lastSent, nb.sentOnce = t, true
			nb.pendingAll, nb.summaryDue, nb.urgent = false, false, false
			nb.clearPending()
			clear(nb.repair)
		}
		e.send(nb.name, batch)
		clear(batch) // drop the references to attestations and table entries
		e.batch = batch[:0]
		if cap(batch) > 4*e.cfg.MaxRoutesPerMessage {
			e.batch = nil // a summary of a large table grew it
		}
	}
}

// sendFull sends the leading full messages of batch (for a long batch,
// such as a table sent to a new neighbour, as it is built) and returns the
// rest, moved to the start of batch: the scratch batch stays a few
// messages long instead of the whole table at every node.
func (e *Engine) sendFull(to string, batch []entry) []entry {
	if len(batch) < 2*e.cfg.MaxRoutesPerMessage {
		return batch
	}
	sent := 0
	for {
		n, full := e.nextMessage(batch[sent:])
		if !full {
			break
		}
		e.sendMessage(to, batch[sent:sent+n])
		sent += n
	}
	rest := copy(batch, batch[sent:])
	clear(batch[rest:])
	return batch[:rest]
}

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

// updates appends the updates due to nb.
func (e *Engine) updates(t time.Duration, nb *neighbour, batch []entry) []entry {
	if nb.pendingAll {
		batch = e.appendAdvert(t, nb, batch, nil, false)
		if !e.cfg.Leaf {
			for _, name := range e.sortedOrigins() {
				batch = e.appendAdvert(t, nb, batch, e.origins.get(name), false)
				batch = e.sendFull(nb.name, batch)
			}
		}
		return batch
	}
	if _, ok := nb.repair[e.cfg.Self]; nb.pendSelf && !ok {
		batch = e.appendAdvert(t, nb, batch, nil, false)
	}
	// In the order queued: every path that queues updates visits origins
	// in a reproducible order (message order, or sorted), so runs are.
	for _, o := range nb.pending {
		if _, ok := nb.repair[o.name]; !o.removed && (len(nb.repair) == 0 || !ok) {
			batch = e.appendAdvert(t, nb, batch, o, false)
			batch = e.sendFull(nb.name, batch)
		}
	}
	for _, name := range e.sortedKeys(nb.repair) {
		if name == e.cfg.Self {
			batch = e.appendAdvert(t, nb, batch, nil, true)
		} else if o := e.origins.get(name); o != nil {
			batch = e.appendAdvert(t, nb, batch, o, true)
		}
		batch = e.sendFull(nb.name, batch)
	}
	return batch
}

// appendAdvert appends what we tell nb about o (nil: Self), if anything,
// and maintains the feasibility distance. A retraction goes only to a
// neighbour that was told a finite route, unless repair is set (nb asked
// for the route again): then any route advertised and lost within the
// last route expiry period is retracted.
func (e *Engine) appendAdvert(t time.Duration, nb *neighbour, batch []entry, o *origin, repair bool) []entry {
	if o == nil {
		batch = e.appendAttest(nb, batch, nil)
		return append(batch, entry{kind: kindUpdate, origin: e.cfg.Self, seqno: e.seqno})
	}
	if e.cfg.Leaf {
		return batch
	}
	name := o.name
	retract := entry{kind: kindUpdate, origin: name, seqno: o.rtSeqno, metric: e.cfg.Infinity}
	told := o.toldFinite(nb)
	switch {
	case o.sel == nil:
		// A repair retracts for one expiry period so lost messages do
		// not leave neighbours with stale routes through us.
		if repair && (!o.advertised || t >= o.lostAt+e.cfg.RouteExpiry) || !repair && !told {
			return batch
		}
		o.setTold(nb, false)
		return append(batch, retract)
	case !o.selSeq:
		return batch // a fresh neighbour's route, until its first update
	case o.sel == nb:
		// Poison reverse: nb is our next hop, it cannot use us.
		if repair && !o.advertised || !repair && !told {
			return batch
		}
		o.setTold(nb, false)
		return append(batch, retract)
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
	batch = e.appendAttest(nb, batch, o)
	return append(batch, entry{kind: kindUpdate, origin: name, seqno: s, metric: m, hops: h})
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

// send splits batch into bounded messages for neighbour to.
func (e *Engine) send(to string, batch []entry) {
	for len(batch) > 0 {
		n, _ := e.nextMessage(batch)
		e.sendMessage(to, batch[:n])
		batch = batch[n:]
	}
}

// nextMessage returns how many leading entries of batch the next message
// takes, and whether that message is full (more entries would not fit).
func (e *Engine) nextMessage(batch []entry) (n int, full bool) {
	size := headerLen
	for n < len(batch) && n < e.cfg.MaxRoutesPerMessage {
		size += entrySize(batch[n])
		if n > 0 && size > maxMessageBytes {
			return n, true
		}
		n++
	}
	return n, n == e.cfg.MaxRoutesPerMessage
}

// sendMessage queues one message to neighbour to, unless the output queue
// is full.
func (e *Engine) sendMessage(to string, entries []entry) {
	limit := 1024 + len(e.nbrs)*(e.cfg.MaxRoutes/e.cfg.MaxRoutesPerMessage+2)*4
	if len(e.outbox) >= limit {
		e.stats.DroppedMessages++
		return
	}
	e.outbox = append(e.outbox, Message{To: to, Payload: encodeMessage(entries)})
	e.stats.MessagesOut++
	for _, en := range entries {
		if en.kind == kindUpdate {
			e.stats.UpdatesOut++
		}
	}
}
