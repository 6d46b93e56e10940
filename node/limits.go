package node

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circuitmesh/circuitmesh/internal/bucket"
	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/ratelog"
)

// limiter enforces Limits on circuits: in total, per source node and per
// link. Each admitted circuit holds a ticket released exactly once.
type limiter struct {
	lim Limits

	mu    sync.Mutex
	total int
	// Circuits by source: by the key of its path (limitSource.keys; a
	// proven source's own), and, for claims, by the key of their share.
	// An entry exists while it counts a circuit: each holds at most
	// MaxCircuits entries.
	perSrc  map[links.SourceKey]int
	claimed map[links.SourceKey]int
	perLink map[string]int
	// Circuits by the link (peer) they came in on, relayed or ending
	// here: the reserve of the limit (circuitReserve) tests this, not
	// perLink, which counts a relayed circuit's next hop too.
	inbound map[string]int
	// Relayed circuits by the link they came in on and the link they
	// go out on: the reserve of a link's limit (linkReserve) tests this.
	// An entry exists while it counts a circuit.
	across map[linkPair]int
	// Streams whose open header is being read, by the link (peer) they
	// came on.
	pending shares
	// pendingFreed holds, by link (peer), a channel closed and forgotten
	// when one of the link's reservations ends, while its accept loop
	// waits for one.
	pendingFreed map[string]chan struct{}
	// Relayed opens waiting for a route to a destination routing lost a
	// moment ago (Config.RouteWait), by the link (peer) they came on.
	// Their streams hold no pending slot and no circuit place while they
	// wait, so these bound them instead, as pending are bounded.
	routeWaits shares

	// Token buckets of full (XX) handshakes: the node's and, by link
	// (peer), those not full (a full bucket is as good as none).
	fullNode   bucket.Bucket
	fullByLink map[string]*bucket.Bucket
	// Token buckets, by link (peer), of the full handshakes (and failed
	// one-message ones) drawn from the reserve of the node's budget
	// (fullReserve); those not full.
	fullReserveByLink map[string]*bucket.Bucket
	// Token buckets, by link (peer), of the one-message first messages
	// that failed here; those not full.
	failedIKByLink map[string]*bucket.Bucket
	// failedIKHeld counts, by link (peer), the one-message first
	// messages whose cryptography runs (holdOneMessage to
	// endOneMessage): each may fail and spend a token of failedIKByLink,
	// so each holds one meanwhile. Without them, a link's concurrent
	// bogus messages all passed the look before the first failure was
	// charged, past the budget by as many as ran at once.
	failedIKHeld map[string]int
	// failedIKFreed holds, by link (peer), a channel closed and
	// forgotten when one of the link's holds ends, while an open waits
	// for one (holdOneMessage).
	failedIKFreed map[string]chan struct{}
	// Token buckets, by incoming link (peer) and destination, of the
	// full first messages this node relays to its neighbours; those not
	// full.
	relayFullByLink map[string]*bucket.Bucket
	// Token buckets, by incoming link (peer) and destination, of the
	// one-message first messages this node relays to its neighbours that
	// are awaiting the destination's answer or were answered retry or
	// overloaded; those not full.
	relayIKByLink map[string]*bucket.Bucket
	// The shares of relayFullByLink and relayIKByLink by entry, and
	// within them by the entries behind it (relayEntries), keyed by link,
	// destination and entries; those not full, at most maxRelayEntries
	// plus one per link and destination.
	relayFullByEntry, relayIKByEntry relayShares
	// Token buckets, by the source a one-message handshake authenticated
	// here, of those handshakes (Limits.OneMessageHandshakesPerSource);
	// those not full. Only authenticated members have one, and beyond
	// maxFullBuckets only those that took a token within the time their
	// bucket takes to refill (MaxCircuitsPerSource/rate, 8 s by default).
	oneMessageBySource map[string]*bucket.Bucket

	// pendingRefused counts streams refused because a pending-open bound
	// was reached; floods logs them once per link per minute.
	pendingRefused atomic.Uint64
	// routeWaitRefused counts opens refused `no route` at once because
	// a bound on opens waiting for a lost route was reached.
	routeWaitRefused atomic.Uint64
	// badOpens counts streams refused because their open header could
	// not be read (malformed: names, service; too large, truncated or
	// late) or, for a sealed open to relay, the first bytes of its
	// handshake; e2eFailed sealed opens to this node whose end-to-end
	// handshake failed (refused policy). badOpenLog writes each kind at
	// DEBUG once per neighbour a minute, and refused resumes once per
	// source a minute, at most badOpenLines lines a minute in all: a
	// neighbour can open such streams as fast as it writes headers.
	badOpens, e2eFailed atomic.Uint64
	// ikFailed counts one-message first messages whose cryptography ran
	// and failed; ikRetried those answered retry unread, their link's
	// budget of failures spent (holdOneMessage).
	ikFailed, ikRetried atomic.Uint64
	badOpenLog          *ratelog.Log
	// forgedRefused counts opens refused for a forged source or path
	// (circuit.CheckSource), all links together; floods logs them once
	// per link per minute.
	forgedRefused atomic.Uint64
	// overloaded counts circuits refused because a circuit limit was
	// reached (node, source, link, backlog); floods logs them once a
	// minute.
	overloaded atomic.Uint64
	// Circuit events a remote member can cause one per circuit, all
	// peers together; floods logs each once per peer a minute with its
	// count. boundEnded: relayed circuits ended by a bound
	// (Limits.RelayStall, RelayHalfClosed), logged by the neighbour the
	// circuit came from. impostors: next hops tried by a dial that
	// reached a node that could not prove it is the destination, once per
	// next hop tried, logged by next hop.
	// dialDenied: circuits closed after their handshake because the
	// policy denies their authenticated source, by source.
	boundEnded, impostors, dialDenied atomic.Uint64
	floods                            *ratelog.Log

	// opens is the budget of opens this node refuses, by source
	// (Limits.RefusedOpensPerSource).
	opens *openBudget
}

// badOpenLines bounds the lines a minute badOpenLog writes, all kinds and
// neighbours together.
const badOpenLines = 16

func newLimiter(l Limits, log *slog.Logger) *limiter {
	return &limiter{
		lim:          l,
		floods:       ratelog.New(log, time.Minute, 1024),
		perSrc:       make(map[links.SourceKey]int),
		claimed:      make(map[links.SourceKey]int),
		perLink:      make(map[string]int),
		inbound:      make(map[string]int),
		across:       make(map[linkPair]int),
		pending:      shares{byLink: make(map[string]int)},
		pendingFreed: make(map[string]chan struct{}),
		routeWaits:   shares{byLink: make(map[string]int)},
		fullNode:     bucket.Full(float64(l.FullHandshakes), float64(l.FullHandshakes), time.Now()),
		fullByLink:   make(map[string]*bucket.Bucket),

		badOpenLog: ratelog.New(log, time.Minute, 1024).Total(badOpenLines,
			"refused opens from more neighbours than the log names: counted, not logged, until the minute ends"),

		failedIKByLink:    make(map[string]*bucket.Bucket),
		failedIKHeld:      make(map[string]int),
		failedIKFreed:     make(map[string]chan struct{}),
		fullReserveByLink: make(map[string]*bucket.Bucket),
		relayFullByLink:   make(map[string]*bucket.Bucket),
		relayIKByLink:     make(map[string]*bucket.Bucket),
		relayFullByEntry:  relayShares{m: make(map[string]*bucket.Bucket)},
		relayIKByEntry:    relayShares{m: make(map[string]*bucket.Bucket)},

		oneMessageBySource: make(map[string]*bucket.Bucket),

		opens: newOpenBudget(l, log),
	}
}

// noteOverloaded counts a circuit refused at a circuit limit and logs
// such refusals as one WARN a minute with the count, never a line per
// circuit.
func (l *limiter) noteOverloaded(reason string) {
	total := l.overloaded.Add(1)
	l.floods.Warn("circuit limits", "refusing circuits: a circuit limit is reached (counts since start)",
		"last_reason", reason, "refused_total", total)
}

// pendingReserve is the part of Limits.MaxPendingOpens kept for links
// holding fewer than pendingFloor open headers being read: without it,
// the shares of four links (a quarter of the bound each) were the whole
// bound, and four neighbours writing headers slowly had every other
// link's opens refused.
func (l *limiter) pendingReserve() int { return l.lim.MaxPendingOpens / 4 }

// pendingFloor is how many open headers a link may have read from the
// reserve: a sixteenth of its share, at least one. Filling the bound
// takes the links that fill the rest at their share, and then as many
// more as the reserve holds floors (19 links with the defaults).
func (l *limiter) pendingFloor() int { return max(1, l.lim.MaxPendingOpensPerLink/16) }

// tryPending reserves room to read one open header from the link to peer,
// or says which bound is reached.
func (l *limiter) tryPending(peer string) (bool, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tryPendingLocked(peer)
}

func (l *limiter) tryPendingLocked(peer string) (bool, string) {
	switch l.reserveLocked(&l.pending, peer) {
	case atLink:
		return false, fmt.Sprintf("too many circuits opening at once on the link from %s", peer)
	case atNode:
		return false, "too many circuits opening at once"
	}
	return true, ""
}

// shares counts reservations on the node and by link (peer), bounded by
// reserveLocked. Guarded by limiter.mu.
type shares struct {
	total  int
	byLink map[string]int
}

// release ends a reservation of peer's link.
func (s *shares) release(peer string) {
	s.total--
	if s.byLink[peer]--; s.byLink[peer] <= 0 {
		delete(s.byLink, peer)
	}
}

// The bound a reservation met (reserveLocked).
const (
	reserved = iota
	atLink   // MaxPendingOpensPerLink
	atNode   // MaxPendingOpens, or its reserve for a link past its floor
)

// reserveLocked takes one of s's places for peer's link, or says which
// bound is reached: MaxPendingOpensPerLink a link and MaxPendingOpens on
// the node, of which the last quarter (pendingReserve) only for links
// holding fewer than pendingFloor. l.mu is held.
func (l *limiter) reserveLocked(s *shares, peer string) int {
	held := s.byLink[peer]
	switch {
	case held >= l.lim.MaxPendingOpensPerLink:
		return atLink
	case s.total >= l.lim.MaxPendingOpens ||
		s.total >= l.lim.MaxPendingOpens-l.pendingReserve() && held >= l.pendingFloor():
		return atNode
	}
	s.total++
	s.byLink[peer]++
	return reserved
}

// awaitPending is tryPending for a link's accept loop: while the link
// holds its share (MaxPendingOpensPerLink) it waits for one of the link's
// reservations to end, for up to timeout or until done. Every reservation ends
// within HeaderTimeout (its header is read or its stream refused), so the
// opens of a burst, whose streams arrive faster than their headers are
// read, wait their turn instead of being refused; the link's further
// streams wait in its QUIC queue meanwhile. At the node-wide bound it
// refuses at once: there the link would wait on others' reservations.
func (l *limiter) awaitPending(peer string, timeout time.Duration, done <-chan struct{}) (bool, string) {
	var expired <-chan time.Time // made at the first wait: most streams never wait
	for {
		l.mu.Lock()
		ok, why := l.tryPendingLocked(peer)
		if ok || l.pending.byLink[peer] < l.lim.MaxPendingOpensPerLink {
			l.mu.Unlock()
			return ok, why
		}
		freed := freedChan(l.pendingFreed, peer)
		l.mu.Unlock()
		if expired == nil {
			timer := time.NewTimer(timeout)
			defer timer.Stop()
			expired = timer.C
		}
		select {
		case <-freed:
		case <-expired:
			return l.tryPending(peer)
		case <-done:
			return l.tryPending(peer)
		}
	}
}

// donePending releases a reservation of tryPending.
func (l *limiter) donePending(peer string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending.release(peer)
	signalFreed(l.pendingFreed, peer)
}

// freedChan is the channel m holds for peer, made if it holds none: one
// waiting for a hold of peer's to end waits for it (l.mu held).
func freedChan(m map[string]chan struct{}, peer string) chan struct{} {
	c := m[peer]
	if c == nil {
		c = make(chan struct{})
		m[peer] = c
	}
	return c
}

// signalFreed closes and forgets m's channel for peer, if any: a hold of
// peer's ended (l.mu held).
func signalFreed(m map[string]chan struct{}, peer string) {
	if c := m[peer]; c != nil {
		close(c)
		delete(m, peer)
	}
}

// pendingOn is the number of open headers being read from peer's link.
func (l *limiter) pendingOn(peer string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pending.byLink[peer]
}

// tryRouteWait reserves room for an open from the link to peer to wait
// for a lost route (Config.RouteWait), or says which bound is reached,
// as for open headers being read (reserveLocked). Before, every such open
// waited, each polling the router every 10 ms: a neighbour holding a
// thousand of them toward a node lost a moment ago cost the node about
// 0.3 s of CPU a second (TestAttackRelayWaitsForALostRoute).
func (l *limiter) tryRouteWait(peer string) (bool, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch l.reserveLocked(&l.routeWaits, peer) {
	case atLink:
		return false, fmt.Sprintf("%d circuits from %s already wait for a route", l.routeWaits.byLink[peer], peer)
	case atNode:
		return false, fmt.Sprintf("%d circuits already wait for a route", l.routeWaits.total)
	}
	return true, ""
}

// doneRouteWait releases a reservation of tryRouteWait.
func (l *limiter) doneRouteWait(peer string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.routeWaits.release(peer)
}

// routeWaitsOn is the number of opens from peer's link waiting for a
// route.
func (l *limiter) routeWaitsOn(peer string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.routeWaits.byLink[peer]
}

// maxFullBuckets is how many links' budgets of full handshakes are kept
// before those that refilled are forgotten.
const maxFullBuckets = 1024

// linkBucket is peer's bucket in m, made full (rate a second, as many
// held) when m has none. m holds at most maxFullBuckets buckets plus those
// of the links that used theirs within a second: those that refilled are
// forgotten first.
func linkBucket(m map[string]*bucket.Bucket, peer string, rate int, now time.Time) *bucket.Bucket {
	return bucketOf(m, peer, rate, rate, now)
}

// bucketOf is linkBucket with a burst of its own.
func bucketOf(m map[string]*bucket.Bucket, peer string, rate, burst int, now time.Time) *bucket.Bucket {
	if b := m[peer]; b != nil {
		return b
	}
	if len(m) >= maxFullBuckets {
		// Forget the links whose budgets refilled; the others are as
		// many as the links that used theirs recently.
		for p, b := range m {
			if b.Refill(now).Tokens >= b.Burst {
				delete(m, p)
			}
		}
	}
	nb := bucket.Full(float64(rate), float64(burst), now)
	m[peer] = &nb
	return &nb
}

// tryFullHandshake takes a token of the node's and of peer's link's
// budget of full handshakes (Limits.FullHandshakes, FullHandshakesPerLink),
// or says which is used up.
func (l *limiter) tryFullHandshake(peer string, now time.Time) (bool, string) {
	return l.takeFull(l.fullByLink, peer, "full", now)
}

// holdOneMessage reports, before any cryptography, whether the link from
// peer has used up its budget of failed one-message handshakes
// (Limits.FullHandshakesPerLink a second, a bucket apart from that of
// full handshakes), and why; if not, it holds a token for this handshake
// until endOneMessage. A handshake still running holds a token, as it may
// fail: while the tokens left are all held, it waits, at most wait, for
// one to end (given back if it succeeded) and looks again. So an honest
// burst, whose handshakes succeed, waits its turn, and a link's
// concurrent bogus messages run no more cryptography than the budget
// allows. A bogus first message costs no cryptography to make (random
// bytes will do) and one or two X25519 operations to refuse, so past the
// budget such messages are refused unread.
func (l *limiter) holdOneMessage(peer string, wait time.Duration) (spent bool, why string) {
	var expired <-chan time.Time // made at the first wait: most opens never wait
	for {
		now := time.Now()
		l.mu.Lock()
		tokens := float64(l.lim.FullHandshakesPerLink)
		if b := l.failedIKByLink[peer]; b != nil {
			tokens = b.Refill(now).Tokens
		}
		held := float64(l.failedIKHeld[peer])
		if tokens-held >= 1 {
			l.failedIKHeld[peer]++
			l.mu.Unlock()
			return false, ""
		}
		if tokens < 1 || expired == nil && wait <= 0 {
			l.mu.Unlock()
			return true, fmt.Sprintf("more than %d failed one-message end-to-end handshakes a second on the link from %s", l.lim.FullHandshakesPerLink, peer)
		}
		freed := freedChan(l.failedIKFreed, peer)
		l.mu.Unlock()
		if expired == nil {
			timer := time.NewTimer(wait)
			defer timer.Stop()
			expired = timer.C
		}
		select {
		case <-freed:
		case <-expired:
			return true, fmt.Sprintf("the link from %s held its budget of failed one-message end-to-end handshakes (%d a second) with handshakes running for %v", peer, l.lim.FullHandshakesPerLink, wait)
		}
	}
}

// endOneMessage ends the hold of holdOneMessage. A handshake that failed
// takes a token of peer's link's budget of failed one-message handshakes
// and of the node's budget of full handshakes, or says which is used up.
// Apart, a neighbour's failing one-message opens, which a relay cannot
// tell from good ones, do not use up the full handshakes of the sources
// behind it.
func (l *limiter) endOneMessage(peer string, failed bool, now time.Time) (bool, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failedIKHeld[peer]--; l.failedIKHeld[peer] <= 0 {
		delete(l.failedIKHeld, peer)
	}
	signalFreed(l.failedIKFreed, peer)
	if !failed {
		return true, ""
	}
	return l.takeFullLocked(l.failedIKByLink, peer, "failed one-message", now)
}

// fullReserve is the part of the node's budget of full handshakes
// (Limits.FullHandshakes) below which every link draws at most fullFloor
// a second: without it, four links at their own budget (a quarter of the
// node's each) spent the node's, and every other link's first contacts
// were refused. While the budget is down to it (three links at their
// budget, or honest demand above three quarters of it), every link,
// honest ones too, gets at most fullFloor a second.
func (l *limiter) fullReserve() int { return l.lim.FullHandshakes / 4 }

// fullFloor is how many full handshakes a second (as many held) a link
// may draw while the node's budget is down to its reserve: a sixteenth
// of its own budget, at least one. Every link, those that spent the rest
// included, is then held to it, so keeping the budget spent takes about
// FullHandshakes/fullFloor links (64 with the defaults, not 4:
// TestFullReserveLinksToSpendIt).
func (l *limiter) fullFloor() int { return max(1, l.lim.FullHandshakesPerLink/16) }

// takeFull takes a token of peer's bucket in byLink (kind handshakes,
// Limits.FullHandshakesPerLink a second) and of the node's budget of full
// handshakes, or says which is used up. While the node's budget is down
// to its reserve, the link also spends a token of its budget of the
// reserve (fullFloor).
func (l *limiter) takeFull(byLink map[string]*bucket.Bucket, peer, kind string, now time.Time) (bool, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.takeFullLocked(byLink, peer, kind, now)
}

// takeFullLocked is takeFull with l.mu held.
func (l *limiter) takeFullLocked(byLink map[string]*bucket.Bucket, peer, kind string, now time.Time) (bool, string) {
	lb := linkBucket(byLink, peer, l.lim.FullHandshakesPerLink, now)
	switch {
	case lb.Refill(now).Tokens < 1:
		return false, fmt.Sprintf("more than %d %s end-to-end handshakes a second on the link from %s", l.lim.FullHandshakesPerLink, kind, peer)
	case l.fullNode.Refill(now).Tokens < 1:
		return false, fmt.Sprintf("more than %d full end-to-end handshakes a second", l.lim.FullHandshakes)
	}
	if l.fullNode.Tokens < float64(l.fullReserve()+1) {
		rb := linkBucket(l.fullReserveByLink, peer, l.fullFloor(), now)
		if rb.Refill(now).Tokens < 1 {
			return false, fmt.Sprintf("more than %d full end-to-end handshakes a second, the rest kept for links opening few", l.lim.FullHandshakes-l.fullReserve())
		}
		rb.Tokens--
	}
	lb.Tokens--
	l.fullNode.Tokens--
	return true, ""
}

// oneMessageSpent reports, before any cryptography, whether source has
// used up its budget of one-message handshakes
// (Limits.OneMessageHandshakesPerSource), and why. It only looks: source
// is what the open claims, and only a handshake that proved it spends
// the budget (tryOneMessage), so opens forging a source's name cannot
// use up its budget.
func (l *limiter) oneMessageSpent(source string, now time.Time) (bool, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.oneMessageBySource[source]; b != nil && b.Refill(now).Tokens < 1 {
		return true, l.oneMessageReason(source)
	}
	return false, ""
}

// tryOneMessage takes a token of the budget of one-message handshakes of
// source, which the handshake authenticated, or says it is used up. The
// budget holds Limits.MaxCircuitsPerSource tokens: a burst of opens the
// per-source circuit limit allows is never refused by it.
func (l *limiter) tryOneMessage(source string, now time.Time) (bool, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := bucketOf(l.oneMessageBySource, source, l.lim.OneMessageHandshakesPerSource,
		max(l.lim.OneMessageHandshakesPerSource, l.lim.MaxCircuitsPerSource), now)
	if b.Refill(now).Tokens < 1 {
		return false, l.oneMessageReason(source)
	}
	b.Tokens--
	return true, ""
}

func (l *limiter) oneMessageReason(source string) string {
	return fmt.Sprintf("more than %d one-message end-to-end handshakes a second from %s", l.lim.OneMessageHandshakesPerSource, source)
}

// tryRelayFull takes a token of the budget of full first messages this
// node relays from peer's link to its neighbour dest
// (Limits.RelayFullHandshakesPerLink, as many held) for an open that
// entered peer along entries (relayEntries), or says it is used up
// (takeRelay).
func (l *limiter) tryRelayFull(peer, dest, entries string, now time.Time) (bool, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rate := l.lim.RelayFullHandshakesPerLink
	if held, why := takeRelay(l.relayFullByLink, &l.relayFullByEntry, peer, dest, entries, rate, rate, now); held == nil {
		return false, fmt.Sprintf("more than %d full end-to-end handshakes a second relayed from %s to %s%s", rate, peer, dest, why)
	}
	return true, ""
}

// tryRelayOneMessage takes a token of the budget of one-message first
// messages this node relays from peer's link to its neighbour dest that
// dest answers retry or overloaded (Limits.RelayFullHandshakesPerLink a
// second, burst the larger of FullHandshakesPerLink and
// MaxCircuitsPerSource), for an open that entered peer along entries
// (relayEntries), or says it is used up (takeRelay). The token is taken
// before the open is forwarded, so that the opens awaiting dest's answer
// hold one each, and is given back (giveRelayOneMessage, with the
// buckets returned) when dest answers anything else: only those that
// fail there (which dest charges to its budget of failed one-message
// handshakes for this node's link), or that dest refuses for a spent
// budget, keep theirs.
func (l *limiter) tryRelayOneMessage(peer, dest, entries string, now time.Time) (held relayHeld, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rate := l.lim.RelayFullHandshakesPerLink
	burst := max(l.lim.FullHandshakesPerLink, l.lim.MaxCircuitsPerSource)
	if held, why = takeRelay(l.relayIKByLink, &l.relayIKByEntry, peer, dest, entries, rate, burst, now); held == nil {
		return nil, fmt.Sprintf("more than %d one-message end-to-end handshakes a second relayed from %s to %s failed there%s", rate, peer, dest, why)
	}
	return held, ""
}

// giveRelayOneMessage gives back the tokens tryRelayOneMessage took (held)
// for an open that dest answered neither retry nor overloaded.
func (l *limiter) giveRelayOneMessage(held relayHeld, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range held {
		b.Refill(now).Tokens = min(b.Burst, b.Tokens+1)
	}
}

// relayHeld is the buckets of a relay budget an open took a token of
// (takeRelay): the link's and the shares'.
type relayHeld []*bucket.Bucket

// relayEntryShare splits a relay budget for one incoming link and
// destination by entry (relayEntries), and each entry's share again by
// the entry behind it, relayShareDepth times: each share is this
// fraction of the rate and burst of the budget or share it is part of
// (at least one token held), and each budget or share but the deepest
// keeps a reserve for the shares within it holding a token (takeRelay).
const relayEntryShare = 4

// relayShareDepth is how many entries back along an open's path a relay
// budget is split (relayEntries): the neighbour the incoming link's peer
// names before itself, the one that neighbour names before itself, and
// one more.
const relayShareDepth = 3

// maxRelayEntries bounds each table of entry shares; beyond it those full
// again are forgotten, and when none is, a new entry shares the one
// bucket its link and destination keep for such entries, and an entry's
// new entries behind it take no share of their own.
const maxRelayEntries = 4096

// relayLevel is one level of a relay budget (takeRelay): the budget of a
// link and destination (level 0), or a share at level i of it, i entries
// back.
type relayLevel struct {
	rate, burst float64 // of the share: what is guaranteed to it
	reserve     float64 // held beyond burst for the shares one level deeper
}

// relayLevels are the levels of a relay budget of rate and burst, link
// first.
func relayLevels(rate, burst int) [relayShareDepth + 1]relayLevel {
	var ls [relayShareDepth + 1]relayLevel
	r, b := float64(rate), burst
	for i := range ls {
		ls[i] = relayLevel{rate: r, burst: float64(b)}
		r, b = r/relayEntryShare, max(1, b/relayEntryShare)
		if i > 0 {
			ls[i-1].reserve = ls[i].burst + 1
		}
	}
	return ls
}

// takeRelay takes a token of the relay budget of peer's link to dest
// (rate a second, burst at once; a bucket of byLink) for an open that
// entered peer along entries: the entry the peer names, the one that
// entry names, and so on (relayEntries, nearest first), each share a
// bucket of byEntry within the one before it. From the deepest share to
// the link's budget, the open takes a token of each that holds one while
// the open holds a token of the share below it, and, holding none, only
// while the reserve for the shares below is left after it: an entry that
// keeps on past its share takes the shares' tokens one at a time as they
// come. Each bucket holds its burst and that reserve, so a lone entry
// still gets burst at once and the rate after, as with no split; an
// entry past its share, a flood, keeps every bucket it shares down to
// its reserve and no further, and another entry finds the tokens its
// share holds. So one neighbour of peer, or one of the nodes it names
// before itself, spends no more of the budget everyone behind peer
// shares than what the others leave, however fast it sends: the nodes an
// open's path names below an entry are the entry's to vary, but every
// share they get is a share of the entry's. It returns the buckets it
// took a token of, nil when refused, and why names the entries whose
// shares were spent.
func takeRelay(byLink map[string]*bucket.Bucket, byEntry *relayShares, peer, dest, entries string, rate, burst int, now time.Time) (held relayHeld, why string) {
	ls := relayLevels(rate, burst)
	linkKey := peer + "\x00" + dest
	link := bucketOf(byLink, linkKey, rate, burst+int(ls[0].reserve), now)
	if link.Refill(now).Tokens < 1 {
		return nil, ""
	}
	// The shares, nearest entry first; the last name of entries is
	// repeated to relayShareDepth names, so that an entry's own opens
	// are a share of their own within the entry's.
	names := strings.Split(entries, "\x00")
	names = names[:min(len(names), relayShareDepth)]
	var shares [relayShareDepth]*bucket.Bucket
	key := linkKey
	for i := range shares {
		key += "\x00" + names[min(i, len(names)-1)]
		l := ls[i+1]
		if shares[i] = byEntry.share(key, linkKey, i, l.rate, l.burst+l.reserve, now); shares[i] == nil {
			break
		}
	}
	held = make(relayHeld, 0, 1+relayShareDepth)
	own := false // the open holds a token of the share below
	for i := relayShareDepth - 1; i >= 0; i-- {
		b := shares[i]
		if b == nil {
			continue
		}
		need := 1.0
		if !own {
			need += ls[i+1].reserve
		}
		if own = b.Refill(now).Tokens >= need; own {
			held = append(held, b)
		}
	}
	if !own && link.Tokens < 1+ls[0].reserve {
		return nil, " (the shares of " + strings.Join(names, " and, behind it, ") + " spent)"
	}
	held = append(held, link)
	for _, b := range held {
		b.Tokens--
	}
	return held, ""
}

// relayShares is a table of entry shares (takeRelay).
type relayShares struct {
	m map[string]*bucket.Bucket
	// scanAt is when a full table is looked through again for shares
	// full again: a look that found none is not repeated before a share
	// emptied then could have refilled, so that a table held full costs
	// no look per open.
	scanAt time.Time
}

// share is the share of key at depth (0 for an entry, 1 for an entry
// behind it, ...) of the link and destination linkKey, made full (rate a
// second, burst held) when it has none. The table holds at most
// maxRelayEntries of them, and one per link and destination that the
// entries finding no room share; an entry behind another finding none
// has no share (nil).
func (t *relayShares) share(key, linkKey string, depth int, rate, burst float64, now time.Time) *bucket.Bucket {
	if b := t.m[key]; b != nil {
		return b
	}
	if len(t.m) >= maxRelayEntries && !now.Before(t.scanAt) {
		for k, b := range t.m {
			if b.Refill(now).Tokens >= b.Burst {
				delete(t.m, k)
			}
		}
		if rate > 0 {
			t.scanAt = now.Add(time.Duration(burst / rate * float64(time.Second)))
		}
	}
	if len(t.m) >= maxRelayEntries {
		if depth > 0 {
			return nil
		}
		// Names are never empty: this key is no entry's.
		key = linkKey + "\x00"
		if b := t.m[key]; b != nil {
			return b
		}
	}
	nb := bucket.Full(rate, burst, now)
	t.m[key] = &nb
	return &nb
}

// limitSource is whom a circuit counts against in the per-source limit:
// its source node, proven (the link's peer opened it at hop 0, or an
// end-to-end handshake proved it), or claimed along the relays its open
// header says it crossed, oldest first, the last being the neighbour it
// came from (claimRelays). The zero value counts against no source.
//
// A claim counts against two keys. Its path: the claimed source along
// exactly these relays, at most the per-source limit, so that claims
// that came along different paths never use up each other's allowance.
// Its share: the claimed source along the same relays but the first,
// at most twice the limit, so that a source whose circuits come through
// many first relays to the same honest rest of the path holds no more
// than that (claimedLimit). Every relay checks that the path ends with
// the neighbour it came from, so a router forging the source some hops
// away is named in the path of each of its forgeries, and only the
// names before its own are its to vary: its paths all contain its name,
// which the real source's paths do not (unless the router relays them),
// so they never share the source's path key, and they share the
// source's share key only as its first relay, with that one path
// (limiter.admit, TestForgerKeysNeverMeetTheSource).
type limitSource struct {
	name    string
	claimed bool     // the source is only claimed: counted along relays
	relays  []string // for a claim
}

func (s limitSource) String() string {
	if !s.claimed {
		return s.name
	}
	return fmt.Sprintf("%s (as claimed along %s)", s.name, strings.Join(s.relays, ", "))
}

// keys are the limiter's keys of s: that of its path (ProvenSource when
// proven), and, for a claim, that of its share (0 when proven).
func (s limitSource) keys() (path, share links.SourceKey) {
	if !s.claimed {
		return links.ProvenSource(s.name), 0
	}
	return links.ClaimedSource(s.name, s.relays), links.ClaimedSource(s.name, s.relays[min(1, len(s.relays)):])
}

// claimedLimit bounds the claims for one source that share all relays
// but the first: through many first relays a source holds at most twice
// its limit, and one of them forging the source's name (at most the
// per-source limit, by its path) leaves the source at least its limit.
func (l *limiter) claimedLimit() int { return 2 * l.lim.MaxCircuitsPerSource }

// ticket is one admitted circuit.
type ticket struct {
	l     *limiter
	named bool            // counted against a source
	path  links.SourceKey // the source's key in perSrc
	share links.SourceKey // the claim's key in claimed; 0 when proven
	in    string          // the link it came in on, counted in inbound; "" for none
	links []string
	once  sync.Once
}

// linkPair is a link a circuit came in on (by peer) and another link it
// crosses, its next hop.
type linkPair struct{ in, out string }

// linkReserve is the part of Limits.MaxCircuitsPerLink that a circuit
// relayed out on a link gets only when fewer than linkFloor circuits that
// came in on its own link go out on that link: without it, every source
// shared the limit of a next hop's link, and one router holding circuits
// through it to a sink beyond (claiming made-up sources, so that no
// per-source limit held them), or four members at their per-source
// limit, had every other circuit toward that next hop refused. It is a
// sixteenth, so that one incoming link still carries fifteen sixteenths
// of the next hop's limit (the circuits of many sources an honest relay
// upstream gathers). The circuits this node opens may take it, and those
// coming in on the link itself are held only by the limit.
func (l *limiter) linkReserve() int { return l.lim.MaxCircuitsPerLink / 16 }

// linkFloor is how many circuits that came in on one link may go out on
// another and still have one more admitted into the reserve of that
// link's limit: a sixteenth of the reserve, at least one, so that filling
// it takes sixteen more incoming links.
func (l *limiter) linkFloor() int { return max(1, l.linkReserve()/16) }

// circuitReserve is the part of Limits.MaxCircuits that a circuit coming
// in on a link (relayed, or ending here) gets only when fewer than
// circuitFloor circuits came in on that link: without it, four links at
// their share (Limits.MaxCircuitsPerLink, a quarter of the limit each)
// held the whole limit, and four routers claiming made-up sources had
// every other circuit through the relay refused. Only circuits that came
// in on the link count, not those sent out through it, so that circuits
// routed toward a neighbour do not deny it the reserve.
func (l *limiter) circuitReserve() int { return l.lim.MaxCircuits / 4 }

// circuitFloor is how many circuits may have come in on a link and still
// have one more from it admitted into the reserve: a sixteenth of its
// share, at least one. Filling the limit with circuits coming in on links
// takes the links that fill the rest at their share and as many more as
// the reserve holds floors (19 links with the defaults, not 4).
func (l *limiter) circuitFloor() int { return max(1, l.lim.MaxCircuitsPerLink/16) }

// errNextHopFull marks admit's refusals that depend on the next hop: the
// limit, or its reserve, of the link the circuit would go out on. Another
// next hop may still take the circuit.
var errNextHopFull = errors.New("next hop's link full")

// errSourceFull marks admit's refusals at the per-source limit along the
// circuit's own path: a bound of the source's own, which its refusals
// are counted against (chargedRefusal).
var errSourceFull = errors.New("source at its circuit limit")

// sourceFull is a refusal at the per-source limit: it matches
// errSourceFull.
type sourceFull struct{ error }

func (e sourceFull) Unwrap() error        { return e.error }
func (e sourceFull) Is(target error) bool { return target == errSourceFull }

// nextHopFull is a refusal on the link to a circuit's next hop, which
// another next hop may not share: it matches errNextHopFull.
type nextHopFull struct{ error }

func (e nextHopFull) Unwrap() error        { return e.error }
func (e nextHopFull) Is(target error) bool { return target == errNextHopFull }

// onLink is err, a refusal on the link to p, marked as the next hop's
// when p is not the link the circuit came in on.
func onLink(p, in string, err error) error {
	if p == in {
		return err
	}
	return nextHopFull{err}
}

// admit admits a circuit from src that came in on the link to in (by peer
// name; "" for a circuit this node opens) and crosses the given links,
// counted against Limits.MaxCircuitsPerLink, or says which limit it would
// exceed. A relayed circuit crosses the link it came in on and the next
// hop's; one ending here crosses none; one this node opens, its first
// hop's. Only a circuit this node opens (in "") may take the reserve of
// the limit (circuitReserve) whatever came in on its links, or the
// reserve of its next hop's link (linkReserve) whatever came in on it.
func (l *limiter) admit(src limitSource, in string, linkPeers ...string) (*ticket, error) {
	named := src.name != ""
	var path, share links.SourceKey
	if named {
		path, share = src.keys()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.lim.MaxCircuits {
		return nil, fmt.Errorf("%d circuits open, the node limit", l.total)
	}
	if in != "" && l.total >= l.lim.MaxCircuits-l.circuitReserve() && l.inbound[in] >= l.circuitFloor() {
		return nil, fmt.Errorf("%d circuits open, the node limit but for the last %d, kept for circuits coming in on links fewer than %d came in on (%d came in on the link from %s)",
			l.total, l.circuitReserve(), l.circuitFloor(), l.inbound[in], in)
	}
	if named && l.perSrc[path] >= l.lim.MaxCircuitsPerSource {
		return nil, sourceFull{fmt.Errorf("%d circuits open from %s, the per-source limit", l.perSrc[path], src)}
	}
	if share != 0 && l.claimed[share] >= l.claimedLimit() {
		return nil, fmt.Errorf("%d circuits open claimed for %s along %s after their first relay, twice the per-source limit",
			l.claimed[share], src.name, relaysAfterFirst(src.relays))
	}
	for _, p := range linkPeers {
		if l.perLink[p] >= l.lim.MaxCircuitsPerLink {
			return nil, onLink(p, in, fmt.Errorf("%d circuits open on the link to %s, the per-link limit", l.perLink[p], p))
		}
		if in != "" && p != in && l.perLink[p] >= l.lim.MaxCircuitsPerLink-l.linkReserve() && l.across[linkPair{in, p}] >= l.linkFloor() {
			return nil, onLink(p, in, fmt.Errorf("%d circuits open on the link to %s, its limit but for the last %d, kept for circuits coming in on links fewer than %d of which go out on it (%d from the link from %s)",
				l.perLink[p], p, l.linkReserve(), l.linkFloor(), l.across[linkPair{in, p}], in))
		}
	}
	l.total++
	if named {
		l.perSrc[path]++
	}
	if share != 0 {
		l.claimed[share]++
	}
	for _, p := range linkPeers {
		l.perLink[p]++
		if in != "" && p != in {
			l.across[linkPair{in, p}]++
		}
	}
	if in != "" {
		l.inbound[in]++
	}
	return &ticket{l: l, named: named, path: path, share: share, in: in, links: linkPeers}, nil
}

// relaysAfterFirst names relays but the first, for a refusal.
func relaysAfterFirst(relays []string) string {
	if len(relays) < 2 {
		return "any one relay"
	}
	return strings.Join(relays[1:], ", ")
}

func (t *ticket) release() {
	if t == nil {
		return
	}
	t.once.Do(func() {
		l := t.l
		l.mu.Lock()
		defer l.mu.Unlock()
		l.total--
		if t.named {
			if l.perSrc[t.path]--; l.perSrc[t.path] <= 0 {
				delete(l.perSrc, t.path)
			}
		}
		if t.share != 0 {
			if l.claimed[t.share]--; l.claimed[t.share] <= 0 {
				delete(l.claimed, t.share)
			}
		}
		for _, p := range t.links {
			if l.perLink[p]--; l.perLink[p] <= 0 {
				delete(l.perLink, p)
			}
			if k := (linkPair{t.in, p}); t.in != "" && p != t.in {
				if l.across[k]--; l.across[k] <= 0 {
					delete(l.across, k)
				}
			}
		}
		if t.in != "" {
			if l.inbound[t.in]--; l.inbound[t.in] <= 0 {
				delete(l.inbound, t.in)
			}
		}
	})
}

// circuitSet tracks live circuits so Close can wait for them and reset
// what remains after the grace period.
type circuitSet struct {
	mu      sync.Mutex
	m       map[*tracked]struct{}
	relays  int
	drained chan struct{} // closed when the set empties, while waitEmpty waits
	ended   bool          // endAll ran: bindWait refuses
}

// tracked is one live circuit end or relay.
type tracked struct {
	relay bool
	reset func() // ends the circuit at once; guarded by circuitSet.mu
	wait  func() // waits for the circuit's goroutines, if it has any; guarded by circuitSet.mu
}

func newCircuitSet() *circuitSet {
	return &circuitSet{m: make(map[*tracked]struct{})}
}

func (s *circuitSet) add(relay bool, reset func()) *tracked {
	t := &tracked{relay: relay, reset: reset}
	s.mu.Lock()
	s.m[t] = struct{}{}
	if relay {
		s.relays++
	}
	s.mu.Unlock()
	return t
}

// bind replaces the reset function of t.
func (s *circuitSet) bind(t *tracked, reset func()) {
	s.mu.Lock()
	t.reset = reset
	s.mu.Unlock()
}

func (s *circuitSet) remove(t *tracked) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[t]; !ok {
		return
	}
	delete(s.m, t)
	if t.relay {
		s.relays--
	}
	if len(s.m) == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}

func (s *circuitSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func (s *circuitSet) relayed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.relays
}

// waitEmpty waits until no circuit is open, d has passed or cut is
// closed.
func (s *circuitSet) waitEmpty(d time.Duration, cut <-chan struct{}) {
	s.mu.Lock()
	if len(s.m) == 0 {
		s.mu.Unlock()
		return
	}
	if s.drained == nil {
		s.drained = make(chan struct{})
	}
	drained := s.drained
	s.mu.Unlock()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	select {
	case <-drained:
	case <-deadline.C:
	case <-cut:
	}
}

// bindWait sets how t is ended and how its goroutines are waited for. It
// refuses (false) once endAll ran: the caller ends t and waits itself.
func (s *circuitSet) bindWait(t *tracked, reset, wait func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	t.reset, t.wait = reset, wait
	return true
}

// endAll ends every circuit still open and waits for their goroutines;
// circuits bound later are refused (bindWait).
func (s *circuitSet) endAll() {
	s.mu.Lock()
	s.ended = true
	var resets, waits []func()
	for t := range s.m {
		if t.reset != nil {
			resets = append(resets, t.reset)
		}
		if t.wait != nil {
			waits = append(waits, t.wait)
		}
	}
	s.mu.Unlock()
	for _, reset := range resets {
		reset()
	}
	for _, wait := range waits {
		wait()
	}
}

// resetAll ends every circuit still open.
func (s *circuitSet) resetAll() {
	s.mu.Lock()
	all := make([]func(), 0, len(s.m))
	for t := range s.m {
		if t.reset != nil {
			all = append(all, t.reset)
		}
	}
	s.mu.Unlock()
	for _, reset := range all {
		reset()
	}
}
