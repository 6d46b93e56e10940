package node

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/internal/bucket"
	"github.com/circuitmesh/circuitmesh/links"
)

// An open this node refuses itself (no service, no route, denied, ...)
// costs it a stream, a goroutine, the header's parse and checks and the
// refusal, and the opener a stream and a header: about what an open it
// accepts costs, with no circuit to bound it. It counted neither as a
// circuit (MaxCircuitsPerSource) nor as a stream ended without an open
// (links.QUICConfig.StreamAborts), so a member could have a node refuse
// opens as fast as it wrote them, for as long as it liked. openBudget
// bounds them by source (Limits.RefusedOpensPerSource).

// defaultRefusedOpens is Limits.RefusedOpensPerSource when zero.
const defaultRefusedOpens = 64

// entryShare is how many times a source's budget the claims entering the
// last relay from one of its neighbours hold together.
const entryShare = 8

// maxRefusalSources bounds each table of buckets (sources, entries);
// beyond it those full again are forgotten, and when none is, a key that
// has none gets none (its refusals are not counted).
const maxRefusalSources = 4096

// openBudget holds the buckets of refused opens by source (the key of
// reclaimSource: proven at hop 0, else as claimed along the path) and, for
// opens at hop 2 and more, by entry: the last relay and the neighbour it
// names before itself, which it proved if it is honest. A source
// claiming made-up sources or relays before its own name (a router)
// gets a source key of its own for each, but every one of its claims
// through an honest last relay shares its entry. Every bucket gates only
// opens whose path crosses every node that can spend it, so a member
// spending one stops only traffic it could drop anyway: no bucket is
// shared by all the claims one neighbour relays, which members behind an
// honest relay could spend for everyone it relays
// (TestOpenBudgetMembersBehindARelayLeaveOthersTheirOpens).
type openBudget struct {
	off         bool
	rate, burst float64
	log         *slog.Logger
	// refusal is the refusal beyond the budget, encoded once (refusalOf).
	refusalOnce sync.Once
	refusal     []byte

	mu       sync.Mutex
	bySource refusalTable
	byEntry  refusalTable

	// charged counts the refusals charged to a budget; beyond the opens
	// refused at once because their budget was spent.
	charged, beyond atomic.Uint64
}

// refusals is one bucket, with its rate-limited log line.
type refusals struct {
	b          bucket.Bucket
	lastWarn   time.Time
	suppressed uint64
}

func newOpenBudget(l Limits, log *slog.Logger) *openBudget {
	rate := l.RefusedOpensPerSource
	if rate == 0 {
		rate = defaultRefusedOpens
	}
	ob := &openBudget{
		off:      rate < 0,
		rate:     float64(rate),
		burst:    float64(max(rate, l.MaxCircuitsPerSource, 1)),
		log:      log,
		bySource: refusalTable{m: make(map[links.SourceKey]*refusals)},
		byEntry:  refusalTable{m: make(map[links.SourceKey]*refusals)},
	}
	return ob
}

// refusalOf is the refusal beyond the budget that node name gives.
func (ob *openBudget) refusalOf(name string) []byte {
	ob.refusalOnce.Do(func() {
		r := circuit.Result{Code: circuit.Overloaded, Node: name,
			Reason: fmt.Sprintf("more than %g opens a second of this source refused at %s", ob.rate, name)}
		ob.refusal, _ = r.AppendTo(nil)
	})
	return ob.refusal
}

// entryKey is the key of o's entry: for an open at hop 2 or more, the
// last relay (the neighbour it came from) and the neighbour that relay
// names before itself; 0 below hop 2, where the source key is the entry.
func entryKey(o *circuit.Open) links.SourceKey {
	relays := claimRelays(o)
	if o.Hop < 2 || len(relays) < 2 {
		return 0
	}
	k := len(relays)
	return links.ClaimedSource(relays[k-2], relays[k-1:])
}

// spent reports whether the budget of o's source (key) or of its entry
// holds no refusal: its open is then refused at once (refuseBeyond).
func (ob *openBudget) spent(o *circuit.Open, key links.SourceKey, now time.Time) bool {
	if ob.off {
		return false
	}
	entry := entryKey(o)
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if r := ob.bySource.m[key]; r != nil && r.b.Refill(now).Tokens < 1 {
		ob.noteBeyond(r, o, "source", now)
		return true
	}
	if r := ob.byEntry.m[entry]; entry != 0 && r != nil && r.b.Refill(now).Tokens < 1 {
		ob.noteBeyond(r, o, "entry", now)
		return true
	}
	return false
}

// noteBeyond counts an open refused beyond the budget r and logs such
// refusals as one WARN line per bucket a minute with their counts.
// ob.mu is held.
func (ob *openBudget) noteBeyond(r *refusals, o *circuit.Open, which string, now time.Time) {
	total := ob.beyond.Add(1)
	if !r.lastWarn.IsZero() && now.Sub(r.lastWarn) < time.Minute {
		r.suppressed++
		return
	}
	args := []any{"source", o.Source, "hop", o.Hop, "path", strings.Join(o.Path, ","),
		"budget", which, "per_second", ob.rate, "node_refused_total", total}
	if r.suppressed > 0 {
		args = append(args, "suppressed", r.suppressed)
	}
	r.lastWarn, r.suppressed = now, 0
	ob.log.Warn("refusing circuit opens at once: too many of this source's opens were refused", args...)
}

// charge spends a token of the budgets of o's source (key) and entry
// for an open this node refused.
func (ob *openBudget) charge(o *circuit.Open, key links.SourceKey, now time.Time) {
	if ob.off {
		return
	}
	entry := entryKey(o)
	ob.mu.Lock()
	defer ob.mu.Unlock()
	ob.charged.Add(1)
	if r := ob.bySource.of(key, ob.rate, ob.burst, now); r != nil {
		r.b.Tokens--
	}
	if entry != 0 {
		if r := ob.byEntry.of(entry, entryShare*ob.rate, entryShare*ob.burst, now); r != nil {
			r.b.Tokens--
		}
	}
}

// refusalTable is a table of buckets by key, at most maxRefusalSources.
type refusalTable struct {
	m map[links.SourceKey]*refusals
	// noRoomUntil is, once a pass over a full table found no bucket full
	// again, the soonest one can be: until then a new key finds no room
	// without another pass. Buckets only fill with time and a charge only
	// empties one, so none is full again before.
	noRoomUntil time.Time
	// scanned counts the buckets the passes looked at.
	scanned uint64
}

// of is key's bucket in t, made full when t has none, or nil when t holds
// maxRefusalSources buckets none of which is full again.
func (t *refusalTable) of(key links.SourceKey, rate, burst float64, now time.Time) *refusals {
	if r := t.m[key]; r != nil {
		r.b.Refill(now)
		return r
	}
	if len(t.m) >= maxRefusalSources {
		if now.Before(t.noRoomUntil) {
			return nil
		}
		soonest := time.Duration(1<<63 - 1)
		for k, r := range t.m {
			t.scanned++
			b := r.b.Refill(now)
			if b.Tokens >= b.Burst {
				delete(t.m, k)
				continue
			}
			if d := time.Duration((b.Burst - b.Tokens) / b.Rate * float64(time.Second)); d < soonest {
				soonest = d
			}
		}
		if len(t.m) >= maxRefusalSources {
			t.noRoomUntil = now.Add(soonest)
			return nil
		}
	}
	r := &refusals{b: bucket.Full(rate, burst, now)}
	t.m[key] = r
	return r
}

// sizes is how many buckets the tables hold.
func (ob *openBudget) sizes() (sources, entries int) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return len(ob.bySource.m), len(ob.byEntry.m)
}

// RefusedOpenStats counts the circuit opens this node refused itself
// (Limits.RefusedOpensPerSource): Charged, those counted against their
// source's budget; Beyond, those refused at once because it was spent.
type RefusedOpenStats struct {
	Charged, Beyond uint64
}

// RefusedOpenStats reports the node's counts of refused opens.
func (n *Node) RefusedOpenStats() RefusedOpenStats {
	ob := n.limits.opens
	return RefusedOpenStats{Charged: ob.charged.Load(), Beyond: ob.beyond.Load()}
}

// refuseBeyond refuses an open whose source spent its budget of refused
// opens, before anything else is done for it: a refusal encoded once,
// written, and the stream closed; no span, no log line (noteBeyond), no
// reason formatted. The caller named the stream, so it does not count as
// one its link's peer ended without an open.
func (n *Node) refuseBeyond(s links.Stream) {
	n.metrics.circuitsRefused.WithLabelValues(codeLabel(circuit.Overloaded)).Inc()
	if _, err := s.Write(n.limits.opens.refusalOf(n.cfg.Name)); err != nil {
		s.Reset(circuit.CloseCancelled)
		return
	}
	_ = s.Close()
}

// chargedRefusal reports whether a refusal this node gives an open with
// code counts against the open's source (openBudget.charge): not when the
// node is shutting down, not a retry (a stale key an honest source falls
// back from), and not overloaded unless ownLimit (a bound of the source's
// own, not one others' circuits fill).
func chargedRefusal(code circuit.Code, ownLimit bool) bool {
	switch code {
	case circuit.ShuttingDown, circuit.Retry:
		return false
	case circuit.Overloaded:
		return ownLimit
	}
	return true
}
