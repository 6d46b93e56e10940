package routing

import "time"

// A route learned from a neighbour expires once that neighbour has not
// refreshed it for its hold time, which follows the intervals at which
// the neighbour's summaries actually arrive, as Babel's route expiry
// follows the interval each update announces (RFC 8966 §3.5.4): a
// neighbour whose periodic refresh runs late (a starved CPU, its timers
// firing seconds after they fall due) gets a hold in proportion. On a
// starved 30-node mesh (docs/DESIGN.md, "Routing sends changes, and
// repairs instead of refreshing") the summaries that came late came a
// median 8.1 s apart instead of 3.5–4 s, up to 55 s, and 297 of the
// 328 expiries of a selected route were of a neighbour whose link
// lived and whose last summary had come 14 s (the route expiry) or
// more before, most often from a neighbour whose summaries had come
// late before. Each such expiry withdrew the route from the nodes
// behind, which held no feasible alternate until a newer seqno came
// back from the origin.
//
// The hold is Config.RouteExpiry scaled by the longest interval between
// the neighbour's summary sets over its last gapWindow to 2×gapWindow
// sets, taken as at least Config.UpdateInterval and at most
// maxHoldScale times it: a neighbour on time keeps the configured expiry
// exactly, a late one keeps its routes at most maxHoldScale ×
// RouteExpiry, and a neighbour on time again returns to the configured
// expiry after at most 2×gapWindow sets. A neighbour silent from the
// start, or isolated, moves nothing: only the arrival of a set counts.

// gapWindow is the number of summary sets over which the longest
// interval is kept (summaryGaps).
const gapWindow = 8

// maxHoldScale bounds the hold of a neighbour's routes to maxHoldScale ×
// Config.RouteExpiry: the time a lost destination's entry is kept
// (housekeep), for which a repair still retracts it (advert), so that a
// stale route held that long is still retracted by a resend.
const maxHoldScale = 2

// summaryGaps follows the intervals between the starts of a neighbour's
// summary sets (admitSummaries).
type summaryGaps struct {
	last      time.Duration // when its last set began
	seen      bool          // a set began since the link came up
	cur, prev time.Duration // longest interval in the current window of sets, in the one before
	n         int           // intervals in the current window
}

// observe records that a set of summaries began at t.
func (g *summaryGaps) observe(t time.Duration) {
	if g.seen {
		g.cur = max(g.cur, t-g.last)
		if g.n++; g.n >= gapWindow {
			g.prev, g.cur, g.n = g.cur, 0, 0
		}
	}
	g.last, g.seen = t, true
}

// longest returns the longest interval kept, 0 before there is one.
func (g *summaryGaps) longest() time.Duration { return max(g.cur, g.prev) }

// holdOf returns how long a route nb advertised is kept once refreshed.
func (e *Engine) holdOf(nb *neighbour) time.Duration {
	iv := e.cfg.UpdateInterval
	gap := nb.gaps.longest()
	if gap <= iv {
		return e.cfg.RouteExpiry
	}
	// RouteExpiry × gap / iv, in floating point: the product of two
	// durations overflows 64 bits from 3 s × 3 s.
	scale := min(float64(gap)/float64(iv), maxHoldScale)
	return time.Duration(float64(e.cfg.RouteExpiry) * scale)
}
