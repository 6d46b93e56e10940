package routing

import (
	"slices"
	"time"

	"github.com/circuitmesh/circuitmesh/internal/splitmix"
)

// Periodic repair (docs/PROTOCOL.md §2.3, "Timing"). Instead of sending its
// whole table every UpdateInterval, a node sends each neighbour a summary
// of what it currently advertises to it: the advertised routes are split
// into buckets by a hash of the origin's name, and each bucket is
// summarised by its number of finite routes and the sum of a hash of each
// route's (origin, seqno, metric, hops). The neighbour computes the same
// over the routes it holds from the sender; where a bucket matches, those
// routes are refreshed (their expiry restarts), and where it differs, it
// asks for the bucket again (a resend entry) and gets every route of it,
// with attestations. A steady mesh thus exchanges 16 bytes per 32 routes per
// neighbour per interval, and a lost message costs one bucket.

// summaryBucketRoutes is the target number of routes per bucket: a resent
// bucket fits a message.
const summaryBucketRoutes = 32

// nameHash is the 64-bit FNV-1a hash of a name; its low bits choose the
// bucket.
func nameHash[T string | []byte](s T) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// grow returns (*buf)[:n] cleared, growing *buf when needed: the engine's
// scratch for handleSummaries.
func grow[T any](buf *[]T, n int) []T {
	*buf = slices.Grow((*buf)[:0], n)[:n]
	clear(*buf)
	return *buf
}

func bucketOf(h uint64, buckets uint16) int { return int(h & uint64(buckets-1)) }

// routeHash mixes a route's fields (splitmix64 finaliser) so that the sum
// over a bucket changes when any of them does.
func routeHash(h uint64, seqno uint16, metric Metric, hops uint16) uint64 {
	return splitmix.Mix(h ^ (uint64(seqno)<<48 | uint64(metric)<<16 | uint64(hops)))
}

// advertisedTo reports the finite route we currently advertise to nb for
// o, if any: the route last sent (advert), which every neighbour
// was told or has queued, or the newer seqno nb alone was sent
// (seqhold.go). It differs from the selected route only by a newer seqno,
// which is not sent by itself (apply), or by a metric change below the
// hysteresis, which refreshDiffs queues before each summary.
func (e *Engine) advertisedTo(o *origin, nb *neighbour) (seqno uint16, metric Metric, hops uint16, ok bool) {
	if e.cfg.Leaf || e.nameOf(o) == nb.name || !o.rtReachable || !o.selSeq || o.isSel(nb) || !o.advertised {
		return 0, 0, 0, false
	}
	if o.hasExt {
		if x := e.xOf(o); x != nil && len(x.holds) > 0 {
			if h := x.holdOf(nb); h != nil && h.told {
				return h.seqno, o.advMetric, o.advHops, true // a newer seqno held from the others
			}
		}
	}
	return o.advSeqno, o.advMetric, o.advHops, true
}

// summaryBuckets is the number of buckets for n routes: a power of two
// giving about summaryBucketRoutes routes per bucket.
func summaryBuckets(n int) uint16 {
	b := 1
	for b < maxBuckets && b*summaryBucketRoutes < n {
		b *= 2
	}
	return uint16(b)
}

// summaries puts the summary of what we advertise to nb. It must
// be called when nothing is pending for nb, so that the summary describes
// what nb was told.
func (e *Engine) summaries(nb *neighbour) {
	n := 1 // ourselves
	for o := range e.origins.all() {
		if _, _, _, ok := e.advertisedTo(o, nb); ok {
			n++
		}
	}
	buckets := summaryBuckets(n)
	sums := make([]uint64, buckets)
	counts := make([]uint16, buckets)
	b := bucketOf(e.selfHash, buckets)
	sums[b] += routeHash(e.selfHash, e.seqno, 0, 0)
	counts[b]++
	for o := range e.origins.all() {
		if s, m, h, ok := e.advertisedTo(o, nb); ok {
			oh := e.hashOf(o)
			b := bucketOf(oh, buckets)
			sums[b] += routeHash(oh, s, m, h)
			counts[b]++
		}
	}
	nb.sumBuckets = buckets
	nb.answered = slices.Grow(nb.answered[:0], (int(buckets)+63)/64)[:(int(buckets)+63)/64]
	clear(nb.answered)
	for i := range sums {
		e.put(entry{kind: kindSummary, buckets: buckets, bucket: uint16(i), count: counts[i], digest: sums[i]})
	}
}

// A neighbour's summaries of one update interval are a set: one bucket
// count, at most that many entries, in messages of MaxRoutesPerMessage
// entries. Each message of summaries costs a walk of the table, so a
// neighbour gets one set per half update interval (a window opened by its
// first summary; the sender's own interval, of the same configuration, is
// at least 7/8 of it), with entries of the set's bucket count only, no
// more entries than buckets, and no more messages than a set of at least
// minSummaryPerMsg entries a message takes, plus one. Other summary
// entries are ignored and counted (Stats.RefusedSummaries): without this,
// 211 bytes naming 13 bucket counts cost a walk of the table and arrays of
// up to 4,096 buckets each, and one entry a message a walk for each of up
// to 4,096 messages.

// admitSummaries keeps the entries of sums that nb's current set admits,
// in place, and counts the others.
func (e *Engine) admitSummaries(t time.Duration, nb *neighbour, sums []entry) []entry {
	w := &nb.sumWin
	if t >= w.end {
		*w = summaryWindow{end: t + e.cfg.UpdateInterval/2, buckets: sums[0].buckets}
		nb.gaps.observe(t)
	}
	per := min(minSummaryPerMsg, e.cfg.MaxRoutesPerMessage)
	if w.msgs > (int(w.buckets)+per-1)/per {
		e.stats.RefusedSummaries += uint64(len(sums))
		return nil
	}
	w.msgs++
	kept := sums[:0]
	for _, s := range sums {
		if s.buckets != w.buckets || w.entries >= int(w.buckets) {
			e.stats.RefusedSummaries++
			continue
		}
		w.entries++
		kept = append(kept, s)
	}
	return kept
}

// summaryWindow is a neighbour's current set of summaries (admitSummaries).
type summaryWindow struct {
	end     time.Duration // when the next set may start
	buckets uint16        // the set's bucket count
	entries int           // entries admitted
	msgs    int           // messages with summaries seen
}

// minSummaryPerMsg is the fewest summary entries a message of a set holds
// (but its last), for a MaxRoutesPerMessage of at least that.
const minSummaryPerMsg = 16

// handleSummaries checks nb's summaries (one bucket count: admitSummaries)
// against the routes we hold from nb: matching buckets are refreshed, the
// others are asked for again.
func (e *Engine) handleSummaries(t time.Duration, nb *neighbour, sums []entry) {
	if sums = e.admitSummaries(t, nb, sums); len(sums) == 0 {
		return
	}
	buckets := sums[0].buckets
	have := grow(&e.sumHave, int(buckets))
	counts := grow(&e.sumCounts, int(buckets))
	for o := range e.origins.all() {
		if i := e.find(o, nb); i >= 0 && e.routes(o)[i].hasSeqno() {
			r := &e.routes(o)[i]
			oh := e.hashOf(o)
			b := bucketOf(oh, buckets)
			have[b] += routeHash(oh, r.seqno, r.metric, r.hops)
			counts[b]++
		}
	}
	good := grow(&e.sumGood, int(buckets))
	for _, s := range sums {
		if have[s.bucket] == s.digest && counts[s.bucket] == s.count {
			good[s.bucket] = true
			continue
		}
		nb.resends = append(nb.resends, entry{kind: kindResend, buckets: buckets, bucket: s.bucket})
	}
	if len(nb.resends) > int(maxBuckets) {
		nb.resends = nb.resends[len(nb.resends)-maxBuckets:]
	}
	var fresh routeEntry // a route refreshed now
	fresh.setExpiry(t, t+e.holdOf(nb))
	refreshed := false
	for o := range e.origins.all() {
		if i := e.find(o, nb); i >= 0 && e.routes(o)[i].expiring() && good[bucketOf(e.hashOf(o), buckets)] {
			e.routes(o)[i].exp = fresh.exp
			refreshed = true
		}
	}
	if refreshed {
		e.scheduleHousekeep(fresh.expiresAt(t))
	}
}

// admitResend notes the bucket en asks nb's routes of again, for
// handleResends. Only buckets of the last summary sent to nb are answered,
// each once per summary, at the triggered-update pace: whatever nb asks,
// it gets at most one copy of what we advertise to it per summary. It
// reports whether the bucket is to be answered.
func (e *Engine) admitResend(nb *neighbour, en entry) bool {
	if en.buckets != nb.sumBuckets {
		e.stats.RefusedResends++
		return false
	}
	w, bit := en.bucket/64, uint64(1)<<(en.bucket%64)
	if nb.answered[w]&bit != 0 {
		e.stats.RefusedResends++
		return false
	}
	nb.answered[w] |= bit
	if len(e.resendAsk) < len(nb.answered) {
		e.resendAsk = make([]uint64, len(nb.answered))
	}
	e.resendAsk[w] |= bit
	return true
}

// handleResends queues every route of the buckets a message asked for
// (admitResend), with attestations and with retractions of routes lost
// recently: one walk of the table for all of them, where a walk per
// bucket cost a 5000-node table 256 walks for one message.
func (e *Engine) handleResends(nb *neighbour) {
	ask := e.resendAsk[:len(nb.answered)]
	asked := func(b int) bool { return ask[b/64]&(1<<(b%64)) != 0 }
	if asked(bucketOf(e.selfHash, nb.sumBuckets)) {
		nb.repair[e.cfg.Self] = struct{}{}
		e.setAttHeld(nb, e.cfg.Self, false)
	}
	if !e.cfg.Leaf {
		for o := range e.origins.all() {
			if asked(bucketOf(e.hashOf(o), nb.sumBuckets)) {
				nb.repair[e.nameOf(o)] = struct{}{}
				e.setAttHeldOf(nb, o, false)
			}
		}
	}
	clear(ask)
}

// refreshDiffs schedules updates for routes whose metric moved by less
// than the hysteresis since they were last sent (such changes are not
// sent as triggered updates), so that the summaries that follow describe
// current metrics. A newer seqno alone is not sent: a neighbour that
// needs it asks (a seqno request), and a route's seqno moves only after
// such requests, so sending every one would flood each bump to every node.
func (e *Engine) refreshDiffs() {
	for _, name := range e.sortedOrigins() { // in order: see updates
		if o := e.origins.get(name); o.rtReachable && o.selSeq && o.advertised && (o.advMetric != e.advertMetric(o) || uint32(o.advHops) != min(o.rtHops, 0xffff)) {
			e.triggerAll(o, false)
		}
	}
}
