package links

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circuitmesh/circuitmesh/internal/bucket"
)

// Streams a peer opens that end without carrying an open (read from, never
// named with SetSource: for a node, reset before or during their header,
// empty, truncated, malformed or forged) each cost this side and the peer
// about 27 µs of CPU together, mostly QUIC's, and MaxStreams bounds only
// how many are open at once. Each peer has a token bucket of them
// (QUICConfig.StreamAborts, refilled at an eighth of it a second): a
// stream is accepted only while the bucket holds a token for each of the
// link's streams accepted and not yet named or ended, and one that ends
// unnamed takes a token. When the bucket falls short the link is closed
// and the peer's links are refused in the handshake until the bucket is
// full again.
//
// Why close rather than hold the peer's stream credit: the link learns a
// stream carried no open only once the stream has ended, when QUIC has
// already done its work for it, so withholding credit would hold back
// the peer's honest streams on the link as well, for as long as the peer
// kept trying; refusing its links until the bucket refilled, the bucket
// kept by peer name, makes redialling earn it nothing.

// streamAbortDiv: the bucket refills at StreamAborts/streamAbortDiv a
// second, so an empty one is full again after streamAbortDiv seconds.
const streamAbortDiv = 8

// maxAbortPeers bounds the peers whose buckets are remembered: those with
// a link up, and those without whose bucket is still refilling (at most
// the peers whose links ended within streamAbortDiv seconds, each of
// which took a handshake). Past it, the buckets of peers without a link
// are forgotten.
const maxAbortPeers = 4096

// abortBudget is one peer's bucket.
type abortBudget struct {
	links int // started links to the peer that have not ended (table's mu)

	mu sync.Mutex
	b  bucket.Bucket
	// until: the peer's links are refused in the handshake until then,
	// when its bucket is full again (set when one of its links closed).
	until time.Time
}

// abortTable holds the buckets of a transport's peers.
type abortTable struct {
	rate, burst float64

	// closed counts the links closed because their peer went beyond its
	// budget; barred the link handshakes, accepted or dialled, refused
	// because the peer's links were barred.
	closed, barred atomic.Uint64

	mu    sync.Mutex
	peers map[string]*abortBudget
	// sweepAt: the size of peers at which acquire next sweeps it, twice
	// its size after the last sweep (at least 64), so that sweeps cost
	// O(1) a link amortised.
	sweepAt int
}

func newAbortTable(budget int) *abortTable {
	return &abortTable{
		rate:    float64(budget) / streamAbortDiv,
		burst:   float64(budget),
		peers:   make(map[string]*abortBudget),
		sweepAt: 64,
	}
}

// acquire returns peer's bucket for a link that starts, full unless the
// peer spent it within the last streamAbortDiv seconds.
func (t *abortTable) acquire(peer string, now time.Time) *abortBudget {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.peers[peer]
	if a == nil {
		if len(t.peers) >= t.sweepAt || len(t.peers) >= maxAbortPeers {
			t.sweepLocked(now, false)
			if len(t.peers) >= maxAbortPeers {
				t.sweepLocked(now, true)
			}
			t.sweepAt = max(64, 2*len(t.peers))
		}
		a = &abortBudget{b: bucket.Full(t.rate, t.burst, now)}
		t.peers[peer] = a
	}
	a.links++
	return a
}

// release ends a link's hold on its peer's bucket.
func (t *abortTable) release(a *abortBudget) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a.links--
}

// sweepLocked forgets the buckets of peers without a link that are full
// again, or all of them when all is set.
func (t *abortTable) sweepLocked(now time.Time, all bool) {
	for p, a := range t.peers {
		if a.links <= 0 && (all || a.full(now)) {
			delete(t.peers, p)
		}
	}
}

// refused reports until when peer's links are refused in the handshake:
// a link of the peer was closed for going beyond its budget, and its
// bucket is not full again.
func (t *abortTable) refused(peer string, now time.Time) (time.Time, bool) {
	t.mu.Lock()
	a := t.peers[peer]
	t.mu.Unlock()
	if a == nil {
		return time.Time{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.until, now.Before(a.until)
}

func (a *abortBudget) full(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.b.Refill(now).Tokens >= a.b.Burst
}

// covers reports whether the bucket holds a token for each of pending
// streams.
func (a *abortBudget) covers(pending int64, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.b.Refill(now).Tokens >= float64(pending)
}

// take spends one token, reporting whether there was one.
func (a *abortBudget) take(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.b.Refill(now).Tokens < 1 {
		return false
	}
	a.b.Tokens--
	return true
}

// bar refuses the peer's links until its bucket, once the pending
// streams of the link took their tokens, is full again, and returns when
// that is.
func (a *abortBudget) bar(now time.Time, pending int64) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	missing := min(a.b.Burst, a.b.Burst-a.b.Refill(now).Tokens+float64(pending))
	if until := now.Add(time.Duration(missing / a.b.Rate * float64(time.Second))); until.After(a.until) {
		a.until = until
	}
	return a.until
}

// admit counts a stream the peer opened, just accepted, as pending (not
// yet named or ended): the bucket must hold a token for every pending
// stream of the link, so that streams the peer ends without an open
// cannot pile up uncounted while this side works through them. It
// reports false, and has the link closed, when it does not.
func (l *quicLink) admit() bool {
	a := l.aborts.Load()
	if a == nil {
		return true
	}
	n := l.unnamed.Add(1)
	if a.covers(n, time.Now()) {
		return true
	}
	l.overBudget(a, l.unopenedN.Load(), n-1)
	l.unnamed.Add(-1)
	return false
}

// settled ends a stream's pending count; unopened is set when it ended
// read from and never named: it takes a token of the peer's bucket
// (also once the link is down: it was admitted against one), and the
// link is closed when there is none.
func (l *quicLink) settled(unopened bool) {
	pending := l.unnamed.Add(-1)
	a := l.aborts.Load()
	if !unopened || a == nil {
		return
	}
	n := l.unopenedN.Add(1)
	if !a.take(time.Now()) {
		l.overBudget(a, n, pending)
	}
}

// overBudget has watch close the link, once, and bars the peer's links
// until its bucket, once pending streams took their tokens, is full
// again; n is the streams ended without an open on the link so far.
func (l *quicLink) overBudget(a *abortBudget, n, pending int64) {
	if l.abortOver.CompareAndSwap(false, true) {
		l.abortSeen.Store(n)
		l.abortUntil.Store(a.bar(time.Now(), pending).UnixNano())
		close(l.overAborts)
	}
}

// closeAborts closes the link because its peer went beyond its budget of
// streams ended without an open. Only watch calls it.
func (l *quicLink) closeAborts() {
	if l.Err() != nil {
		return
	}
	cfg := &l.t.cfg
	n := l.abortSeen.Load()
	until := time.Unix(0, l.abortUntil.Load())
	reason := fmt.Sprintf("%s ended %d streams without an open on this link, beyond its budget of %d (refilled at %g a second); its links are refused until %s",
		l.hello.Node, n, cfg.StreamAborts, l.t.aborts.rate, until.UTC().Format(time.RFC3339))
	total := l.t.aborts.closed.Add(1)
	l.t.abortLog.Warn(l.hello.Node, "closing link: peer ends too many streams without an open",
		"peer", l.hello.Node, "remote", l.conn.RemoteAddr().String(), "streams", n,
		"budget", cfg.StreamAborts, "per_second", l.t.aborts.rate, "refused_until", until,
		"total_closed", total)
	l.down(fmt.Errorf("link to %s: %w: %w: %s", l.hello.Node, ErrLinkLost, ErrStreamAborts, reason), codeAborts, reason)
}

// checkAborts refuses a link to peer while its links are barred for
// going beyond its budget.
func (t *QUICTransport) checkAborts(peer string) error {
	if until, ok := t.aborts.refused(peer, time.Now()); ok {
		t.aborts.barred.Add(1)
		return fmt.Errorf("%w: %s ended too many streams without an open on its last link to %s; its links are refused for %v more",
			ErrStreamAborts, peer, t.name(), time.Until(until).Round(time.Millisecond))
	}
	return nil
}

// StreamAbortStats counts what the budget of streams ended without an
// open (QUICConfig.StreamAborts) did (QUICTransport.StreamAbortStats).
type StreamAbortStats struct {
	// Closed counts the links closed (close code 0x106, ErrStreamAborts)
	// because their peer ended more streams without an open than its
	// budget.
	Closed uint64
	// Refused counts the link handshakes, accepted or dialled, refused
	// once the peer proved its certificate because a link of the peer was
	// closed so and its bucket is not full again.
	Refused uint64
}

// StreamAbortStats reports the counters of the budget of streams ended
// without an open.
func (t *QUICTransport) StreamAbortStats() StreamAbortStats {
	return StreamAbortStats{Closed: t.aborts.closed.Load(), Refused: t.aborts.barred.Load()}
}
