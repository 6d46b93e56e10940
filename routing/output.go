package routing

import (
	"bytes"
	"maps"
	"slices"
	"sync"
	"time"
)

// triggerAll schedules a triggered update for o (nil: Self) to every
// neighbour. Urgent updates (retractions and new seqnos, which drive
// failover and happen once per event) are held back by a tenth of the rate
// limit only. The selected next hop is skipped while it was never told a
// finite route: it would be told nothing (poison reverse, advert), and a
// change of next hop triggers o again. (A third of the updates queued in a
// cold start at 1000 nodes were of this kind.)
func (e *Engine) triggerAll(o *origin, urgent bool) {
	if e.cfg.Leaf && o != nil {
		return
	}
	for _, nb := range e.slots {
		if nb != nil {
			if o == nil || !o.isSel(nb) || o.toldFinite(nb) {
				nb.queue(o)
				if urgent {
					nb.urgent = true
				}
			}
		}
	}
}

// queue adds o (nil: Self) to nb's pending updates. A removed entry is
// not queued: its id may name another entry already.
func (nb *neighbour) queue(o *origin) {
	switch {
	case o == nil:
		nb.pendSelf = true
		return
	case o.removed:
		return
	case nb.slot < maskSlots:
		if o.pend&(1<<nb.slot) != 0 {
			return
		}
		o.pend |= 1 << nb.slot
	default:
		if _, ok := nb.pendSet[o.id]; ok {
			return
		}
		if nb.pendSet == nil {
			nb.pendSet = make(map[uint32]struct{})
		}
		nb.pendSet[o.id] = struct{}{}
	}
	nb.pending = append(nb.pending, o.id)
}

// byID returns the entry of id, which is in use (in the table, or
// removed and held by a pending list).
func (e *Engine) byID(id uint32) *origin { return e.side.entry(e.side.at(id)) }

// maxKeptPending is the capacity of a neighbour's pending list always
// kept for the next updates; a larger one is kept while it is used by a
// quarter. A cold start queues most of the table for every neighbour:
// kept afterwards, those lists held 24 MB at 1000 nodes.
const maxKeptPending = 256

// hasPending reports whether updates are queued for nb.
func (nb *neighbour) hasPending() bool { return nb.pendSelf || len(nb.pending) > 0 }

// clearPending empties nb's pending updates.
func (e *Engine) clearPending(nb *neighbour) {
	for _, id := range nb.pending {
		o := e.byID(id)
		if nb.slot < maskSlots {
			o.pend &^= 1 << nb.slot
		}
		if o.removed {
			e.unqueued(o)
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

// dropPending removes the first k of nb's pending updates (sent), keeping
// the others, in order, for the next batch.
func (e *Engine) dropPending(nb *neighbour, k int) {
	for _, id := range nb.pending[:k] {
		o := e.byID(id)
		if nb.slot < maskSlots {
			o.pend &^= 1 << nb.slot
		} else {
			delete(nb.pendSet, id)
		}
		if o.removed {
			e.unqueued(o)
		}
	}
	n := copy(nb.pending, nb.pending[k:])
	clear(nb.pending[n:])
	nb.pending = nb.pending[:n]
}

// queueAll queues the whole table for nb (a new link): in sorted order, so
// that runs are reproducible, and paced like any pending update.
func (e *Engine) queueAll(nb *neighbour) {
	nb.queue(nil)
	if !e.cfg.Leaf {
		for _, name := range e.sortedOrigins() {
			nb.queue(e.origins.get(name))
		}
	}
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
// per-neighbour rate limit for triggered updates and the per-neighbour
// byte budget (Config.MaxBurstBytes): what does not fit waits for the
// next window.
func (e *Engine) flush(t time.Duration) {
	buf := sendScratch.Get().(*[]byte)
	e.wBuf = *buf
	for _, name := range e.sortedNbrs() {
		nb := e.nbrs[name]
		if t >= nb.burstAt+e.cfg.MinTriggeredInterval {
			nb.burstAt, nb.burstBytes, nb.burstMsgs = t, 0, 0
		}
		e.wBytes, e.wMsgs = 0, 0
		if nb.hello {
			// Before anything else, so that nb reads what follows as
			// from a sender of wireVersion. A receiver of another
			// release refuses it (as malformed) and nothing else.
			nb.hello = false
			e.sendMessage(nb.name, Hello(), 0)
			e.wBytes += headerLen
			e.wMsgs++
		}
		e.wVer = wireBase
		if nb.reads4 {
			e.wVer = wireVersion
		}
		e.begin(nb.name)
		if len(nb.requests) > 0 {
			for _, o := range sortedKeysIn(e, nb.requests) {
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
		e.putOwnAtt(nb)
		if at, ok := e.batchAt(nb); ok && t >= at {
			if nb.pendingAll {
				e.queueAll(nb)
				nb.pendingAll = false
			}
			done := e.updates(t, nb)
			if done && nb.summaryDue {
				// Only once everything queued for nb went: the
				// summary describes what nb was told, and buckets
				// still queued would draw resend requests.
				e.summaries(nb)
				nb.summaryDue = false
			}
			nb.lastSent, nb.sentOnce = t, true
			if done {
				nb.urgent = false
			} else {
				e.stats.PacedBatches++
			}
		}
		e.end()
		nb.burstBytes += e.wBytes
		nb.burstMsgs += e.wMsgs
	}
	*buf, e.wBuf = e.wBuf[:0], nil
	sendScratch.Put(buf)
}

// sendScratch holds the buffers flush encodes messages into (*[]byte),
// shared by the engines of a process: each message is copied out at its
// length (end), so one buffer per goroutine flushing at a time is enough,
// where a buffer of its own at every engine held up to maxKeptMessageBuf
// (2.6 MB of live heap at 1000 engines).
var sendScratch = sync.Pool{New: func() any { return new([]byte) }}

// batchAt returns when nb's next batch of updates or summaries may go, and
// whether one is due at all. A new neighbour, a whole table and a periodic
// summary go at once, other updates after the triggered-update gap, and
// nothing before the window whose budget was spent ends.
func (e *Engine) batchAt(nb *neighbour) (time.Duration, bool) {
	busy := nb.pendingAll || nb.hasPending() || len(nb.repair) > 0
	var at time.Duration
	switch {
	case busy && (nb.pendingAll || nb.summaryDue || !nb.sentOnce):
		at = 0
	case busy:
		at = nb.lastSent + e.nextGap(nb)
	case nb.summaryDue:
		at = 0
	default:
		return 0, false
	}
	// As spent judges a window's next message (its header counted; a
	// window's first entry always goes).
	if nb.burstBytes > 0 && (nb.burstBytes+headerLen >= e.cfg.MaxBurstBytes || nb.burstMsgs >= maxBurstMessages) {
		at = max(at, nb.burstAt+e.cfg.MinTriggeredInterval)
	}
	return at, true
}

// spent reports whether the messages to nb of this window, the one being
// built included, reached the budget (Config.MaxBurstBytes).
func (e *Engine) spent(nb *neighbour) bool {
	if nb.burstBytes == 0 && e.wMsgs == 0 && e.wCount == 0 {
		return false // a window's first entry goes, whatever the budget
	}
	msgs := nb.burstMsgs + e.wMsgs
	if e.wCount > 0 {
		msgs++
	}
	return nb.burstBytes+e.wBytes+len(e.wBuf) >= e.cfg.MaxBurstBytes || msgs >= maxBurstMessages
}

// Output messages are encoded as their entries are produced (put), into
// one buffer (sendScratch, held for the flush): each message is then
// copied out at its length (no two queued messages share memory).
// (Gathering a neighbour's entries first and encoding them afterwards
// held up to 256 entries of 88 bytes per engine and walked them three
// times.)

// begin starts the messages to neighbour to.
func (e *Engine) begin(to string) {
	e.wTo = to
	e.wBuf = appendHeader(e.wBuf[:0], e.wVer)
	e.wCount, e.wUpdates = 0, 0
}

// put adds en to the message being built, first sending that message if
// en would not fit in it (Config.MaxRoutesPerMessage, maxMessageBytes).
func (e *Engine) put(en entry) {
	e.room(entrySize(en))
	e.wBuf = appendEntry(e.wBuf, en)
	e.wCount++
	if en.kind == kindUpdate {
		e.wUpdates++
	}
}

// putUpdate is put for an update, which it encodes without building its
// entry (an entry is 88 bytes: copying them was a tenth of the
// instructions of sending).
func (e *Engine) putUpdate(origin string, seqno uint16, metric Metric, hops uint16) {
	e.room(2 + len(origin) + updateBodyLen)
	e.wBuf = appendUpdate(e.wBuf, origin, seqno, metric, hops)
	e.wCount++
	e.wUpdates++
}

// putAttUpdate is putUpdate for an attested update, which only a message
// of wireVersion carries.
func (e *Engine) putAttUpdate(origin string, seqno uint16, metric Metric, hops uint16, att []byte) {
	e.room(2 + len(origin) + attUpdateMin + len(att))
	e.wBuf = appendAttUpdate(e.wBuf, origin, seqno, metric, hops, att)
	e.wCount++
	e.wUpdates++
}

// putAttest is putUpdate for an attestation.
func (e *Engine) putAttest(origin string, seqno uint16, att []byte) {
	e.room(2 + len(origin) + attestBodyMin + len(att))
	e.wBuf = appendAttest(e.wBuf, origin, seqno, att)
	e.wCount++
}

// room sends the message being built if an entry of size bytes would not
// fit in it (Config.MaxRoutesPerMessage, maxMessageBytes).
func (e *Engine) room(size int) {
	if e.wCount > 0 && (e.wCount == e.cfg.MaxRoutesPerMessage || len(e.wBuf)+size > maxMessageBytes) {
		e.end()
	}
}

// end sends the message being built, if it holds entries, and starts the
// next one to the same neighbour.
func (e *Engine) end() {
	if e.wCount > 0 {
		setCount(e.wBuf, e.wCount)
		e.sendMessage(e.wTo, bytes.Clone(e.wBuf), e.wUpdates)
		e.wBytes += len(e.wBuf)
		e.wMsgs++
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
func (e *Engine) sortedKeys(m map[string]struct{}) []string { return sortedKeysIn(e, m) }

// sortedKeysIn is sortedKeys for a map of any values: the seqno requests
// to a neighbour (flush) were sorted into a fresh slice grown by appending
// at every batch that held any, a quarter of the allocations after the
// death of the busiest of 1000 nodes.
func sortedKeysIn[V any](e *Engine, m map[string]V) []string {
	k := e.keysBuf[:0]
	for s := range m {
		k = append(k, s)
	}
	slices.Sort(k)
	e.keysBuf = k
	return k
}

// updates puts the updates due to nb, as many as its budget allows
// (spent), and reports whether all went: our own route, the pending
// updates in the order queued, then the routes nb asked for again
// (repair), by name. What did not fit stays queued.
func (e *Engine) updates(t time.Duration, nb *neighbour) bool {
	if _, ok := nb.repair[e.cfg.Self]; nb.pendSelf && !ok {
		e.advert(t, nb, nil, false)
	}
	nb.pendSelf = false
	// In the order queued: every path that queues updates visits origins
	// in a reproducible order (message order, or sorted), so runs are.
	// Advertising a queued origin queues nothing more for nb (it is
	// queued already).
	k := 0
	for _, id := range nb.pending {
		if e.spent(nb) {
			break
		}
		k++
		o := e.byID(id)
		if o.removed {
			continue
		}
		if len(nb.repair) == 0 {
			e.advert(t, nb, o, false)
		} else if _, ok := nb.repair[e.nameOf(o)]; !ok {
			e.advert(t, nb, o, false)
		}
	}
	if k < len(nb.pending) {
		e.dropPending(nb, k)
		return false
	}
	done := true
	for _, name := range e.sortedKeys(nb.repair) {
		if e.spent(nb) {
			done = false
			break
		}
		delete(nb.repair, name)
		if name == e.cfg.Self {
			e.advert(t, nb, nil, true)
		} else if o := e.origins.get(name); o != nil {
			e.advert(t, nb, o, true)
		}
	}
	// Every update queued, and those the repair's adverts queued for nb
	// (an origin whose route moved: sent just now), went.
	e.clearPending(nb)
	return done
}

// advert puts what we tell nb about o (nil: Self), if anything,
// and maintains the feasibility distance. A retraction goes only to a
// neighbour that was told a finite route, unless repair is set (nb asked
// for the route again): then any route advertised and lost within the
// longest hold of a route (hold.go) is retracted.
func (e *Engine) advert(t time.Duration, nb *neighbour, o *origin, repair bool) {
	if o == nil {
		m := Metric(0)
		if nb.drainLocal {
			m = e.cfg.Infinity // tells nb of the drain (drain.go)
		}
		e.putAttested(nb, nil, e.cfg.Self, e.seqno, m, 0)
		return
	}
	if e.cfg.Leaf {
		return
	}
	told := o.toldFinite(nb)
	switch {
	case !o.rtReachable:
		// A repair retracts for as long as a neighbour may hold the
		// route (maxHoldScale expiry periods, hold.go) so lost messages
		// do not leave neighbours with stale routes through us.
		if repair && (!o.advertised || t >= o.changedAt+maxHoldScale*e.cfg.RouteExpiry) || !repair && !told {
			return
		}
		o.setTold(nb, false)
		e.putUpdate(e.nameOf(o), o.rtSeqno, e.cfg.Infinity, 0)
		return
	case !o.selSeq:
		return // a fresh neighbour's route, until its first update
	case o.isSel(nb):
		// Poison reverse: nb is our next hop, it cannot use us.
		if repair && !o.advertised || !repair && !told {
			return
		}
		o.setTold(nb, false)
		e.untold(o, nb)
		e.putUpdate(e.nameOf(o), o.rtSeqno, e.cfg.Infinity, 0)
		return
	}
	// The metric selected, or the floor of an improvement not held yet
	// (damp.go).
	s, m := o.rtSeqno, e.advertMetric(o)
	if !o.fdValid || seqnoLess(o.fdSeqno, s) || (s == o.fdSeqno && m < o.fdMetric) {
		o.fdValid, o.fdSeqno, o.fdMetric = true, s, m
		o.changedAt = t
	}
	h := uint16(min(o.rtHops, 0xffff))
	held := false
	switch {
	case !o.advertised:
	case o.advSeqno == s && o.advMetric == m && o.advHops == h:
		e.untold(o, nb) // nb gets what the others hold
	case o.advMetric == m && o.advHops == h && e.holdSeqno(t, o, nb, s):
		// A newer seqno alone: nb gets it, the others keep the route
		// they hold (seqhold.go).
		held = true
	default:
		// What every neighbour holds from us moves (advertisedTo):
		// queue it for all, if this is not already that.
		e.triggerAll(o, false)
		e.moved(o)
	}
	o.advertised = true
	o.setTold(nb, true)
	if !held {
		o.advSeqno, o.advMetric, o.advHops = s, m, h
	}
	e.putAttested(nb, o, e.nameOf(o), s, m, h)
}

// putAttested puts the update of o (nil: Self) with the attestation
// that covers it if nb lacks it (attest): as one attested update if nb
// reads them and the attestation is of the update's seqno, else as an
// attestation followed by the update.
func (e *Engine) putAttested(nb *neighbour, o *origin, name string, seqno uint16, metric Metric, hops uint16) {
	if attSeq, att := e.attest(nb, o); att == nil {
		e.putUpdate(name, seqno, metric, hops)
	} else if attSeq == seqno && e.wVer == wireVersion {
		e.putAttUpdate(name, seqno, metric, hops, att)
	} else {
		e.putAttest(name, attSeq, att)
		e.putUpdate(name, seqno, metric, hops)
	}
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
