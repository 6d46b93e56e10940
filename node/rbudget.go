package node

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/internal/bucket"
)

// Defaults of the budget of resumable circuits (Limits).
const (
	DefaultResumeBuffer       = 256 << 20
	DefaultMaxParked          = 1024
	DefaultMaxParkedPerSource = 64
	// MinResumeBuffer is the least Limits.ResumeBuffer and
	// Limits.ResumeBufferPerSource may be: the most one resumable circuit
	// holds (a window each way and the received records it may keep
	// unread, a quarter of a window; circuit.MaxResumeCharge), so that a
	// lone circuit of a source is never reset by its share.
	MinResumeBuffer = circuit.MaxResumeCharge
)

// Reasons a resumable circuit was ended by the budget, the label of
// circuitmesh_resume_budget_drops_total. What a circuit receives is
// budgeted by ending it (the other end was granted its window and cannot
// be held back); what it sends, by holding its Writes back (GrowSend).
const (
	dropSourceShare  = "source_share"  // its source's share was full
	dropNodeBudget   = "node_budget"   // the node's budget was full and its source held the most
	dropParkedSource = "parked_source" // its source had too many circuits waiting for a resume
	dropParkedNode   = "parked_node"   // the node had too many, and its source held the most
)

// resumeBudget shares the memory of the buffers of the resumable circuits
// that end at this node (their receive queues and retransmit buffers,
// with a path or waiting for one) among their sources: a source gets at
// most perSource bytes, the node at most max; a source that asks for
// bytes while the node is full takes them back from the source holding
// the most, if that one holds more than it would. It also bounds the
// circuits waiting for a resume (parked), per source and in all.
//
// And it budgets, by source, what the resumes of a source have its
// circuits send again (Limits.ResumeResendPerSource): a token bucket of
// bytes, holding perSource and earning resendRate a second, that each
// resume taken draws on, into debt if need be; while a source's bucket is
// in debt its resume opens are refused overloaded (resendDebt, respond).
//
// A circuit's retransmit buffer, which this node's application fills, is
// not a reason to end it: its Writes wait for room instead (GrowSend),
// and the circuits refused room are woken (evictLoop, SendRoom) when
// bytes come back.
type resumeBudget struct {
	// dial: the budget of the circuits this node dials, by destination
	// (newDialBudget). Their Writes wait for room as above; what they
	// receive is counted and never refused, and they do not park
	// (resumeConfig).
	dial                          bool
	waitLog                       func(dest string, held, share, waiting int) // dial: a circuit's Writes began to wait (called without mu)
	max, perSource                int
	maxParked, maxParkedPerSource int
	resendRate                    int
	drops                         *prometheus.CounterVec
	resendRefused                 prometheus.Counter // resume opens of proven sources refused for their debt

	mu      sync.Mutex
	total   int // bytes granted
	parked  int
	sources map[string]*budgetSource
	// The buckets of re-sent bytes by source, those not full (a full
	// bucket is as good as none): apart from sources, whose entry goes
	// with their last circuit, so that a source cannot refill its bucket
	// by ending its circuits. At most maxFullBuckets, plus those of the
	// sources whose resumes drew on them within the time they take to
	// refill (see bucketOf).
	resend map[string]*bucket.Bucket
	evict  []*budgetAccount // ended by the budget, for evictLoop to abort
	kick   chan struct{}    // evict has work, or wake is set (capacity 1)
	// The accounts whose Writes GrowSend refused since they were last
	// granted (budgetAccount.waiting), and whether bytes came back since
	// evictLoop last woke them.
	waiting  int
	wake     bool
	accounts int // open accounts
}

// budgetSource is what one source's circuits hold.
type budgetSource struct {
	name     string
	bytes    int
	parked   int
	waiting  int // accounts waiting for room for their retransmit buffer
	accounts map[*budgetAccount]struct{}
}

// budgetAccount is one circuit's share: a circuit.ResumeBudget.
type budgetAccount struct {
	b        *resumeBudget
	src      *budgetSource
	bytes    int       // guarded by b.mu, like the rest
	parkedAt time.Time // zero unless waiting for a resume
	dead     bool      // ended (or being ended) by the budget, or gone
	waiting  bool      // GrowSend refused it room it has not been granted since
	conn     *circuit.Resumable
	closed   func() bool // whether conn's application closed it (conn.AppClosed); nil before bind
	why      error       // why the budget ends it
}

// newBudget is a budget of l's bounds without metrics.
func newBudget(l Limits) *resumeBudget {
	return &resumeBudget{
		max: l.ResumeBuffer, perSource: l.ResumeBufferPerSource,
		maxParked: l.MaxParked, maxParkedPerSource: l.MaxParkedPerSource,
		resendRate: l.ResumeResendPerSource,
		sources:    make(map[string]*budgetSource),
		resend:     make(map[string]*bucket.Bucket),
		kick:       make(chan struct{}, 1),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "circuitmesh_resume_budget_drops_total",
			Help: "Resumable circuits ending here that the budget of resumable circuits ended, by reason (source_share, node_budget, parked_source, parked_node)."}, []string{"reason"}),
		resendRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "circuitmesh_resume_resend_refused_total",
			Help: "Resume opens refused overloaded because the budget of bytes sent again for the resumes of their source, proven by their handshake, was in debt."}),
	}
}

// newDialBudget is the budget of the resumable circuits this node dials,
// shared by destination as newResumeBudget's is by source, within the
// same bounds (Limits.ResumeBuffer, ResumeBufferPerSource): a Write that
// would take the retransmit buffers of a destination's circuits beyond
// its share less a sixteenth, or the node's beyond the budget less a
// sixteenth, waits for room (GrowSend), one record's buffer per circuit
// granted always. Without it, each circuit kept up to a window (4 MiB)
// its destination did not acknowledge, and a destination that never
// acknowledged (or a path slower than the local clients) had a forwarder
// of 370 connections hold 2.5 GiB
// (TestAttackForwardToANodeThatNeverAcknowledges). What they
// receive is counted, and slows their Writes as it fills the share, but
// never ends them: an honest destination bounds what it sends by its own
// budget.
func newDialBudget(l Limits, reg *prometheus.Registry) *resumeBudget {
	b := newBudget(l)
	b.dial = true
	reg.MustRegister(
		b.gauge("circuitmesh_dial_buffered_bytes", "Memory held by the buffers of the resumable circuits this node dialled (receive queues and retransmit buffers).",
			func(u budgetUsage) int { return u.bytes }),
		b.gauge("circuitmesh_dial_send_waiting_circuits", "Resumable circuits this node dialled whose Writes wait for room in the budget of their retransmit buffers.",
			func(u budgetUsage) int { return u.waiting }))
	return b
}

func newResumeBudget(l Limits, reg *prometheus.Registry) *resumeBudget {
	b := newBudget(l)
	reg.MustRegister(b.drops, b.resendRefused,
		b.gauge("circuitmesh_resume_buffered_bytes", "Memory held by the buffers of the resumable circuits ending here (receive queues and retransmit buffers).",
			func(u budgetUsage) int { return u.bytes }),
		b.gauge("circuitmesh_resume_parked_circuits", "Resumable circuits ending here that wait for a new path.",
			func(u budgetUsage) int { return u.parked }))
	for _, r := range []string{dropSourceShare, dropNodeBudget, dropParkedSource, dropParkedNode} {
		b.drops.WithLabelValues(r)
	}
	return b
}

// gauge is the gauge name of what f reads in b's totals.
func (b *resumeBudget) gauge(name, help string, f func(budgetUsage) int) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
		func() float64 { return float64(f(b.totals())) })
}

// budgetUsage is what the resumable circuits ending at a node hold.
type budgetUsage struct {
	bytes, parked, circuits int
	waiting                 int            // circuits whose Writes wait for room
	perSource               map[string]int // bytes by source
}

// totals is usage without the counts by source.
func (b *resumeBudget) totals() budgetUsage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return budgetUsage{bytes: b.total, parked: b.parked, waiting: b.waiting}
}

func (b *resumeBudget) usage() budgetUsage {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := budgetUsage{bytes: b.total, parked: b.parked, perSource: make(map[string]int, len(b.sources))}
	for name, s := range b.sources {
		u.perSource[name] = s.bytes
		u.circuits += len(s.accounts)
	}
	return u
}

// open makes the account of a new circuit from source.
func (b *resumeBudget) open(source string) *budgetAccount {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sources[source]
	if s == nil {
		s = &budgetSource{name: source, accounts: make(map[*budgetAccount]struct{})}
		b.sources[source] = s
	}
	a := &budgetAccount{b: b, src: s}
	s.accounts[a] = struct{}{}
	b.accounts++
	return a
}

// bind names the circuit a charges; one the budget already ended is
// aborted at once.
func (a *budgetAccount) bind(r *circuit.Resumable) {
	a.b.mu.Lock()
	a.conn, a.closed = r, r.AppClosed
	dead := a.dead && a.why != nil
	a.b.mu.Unlock()
	if dead {
		a.b.kickLoop()
	}
}

// Grow grants n bytes unless the source's share or the node's budget is
// full; when the node is full, circuits of the source holding the most
// are ended first if it holds more than a's source would.
func (a *budgetAccount) Grow(n int) bool {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.dead {
		return false
	}
	if b.dial {
		a.bytes += n
		a.src.bytes += n
		b.total += n
		return true
	}
	if a.src.bytes+n > b.perSource {
		b.endLocked(a, dropSourceShare, fmt.Errorf("%w: source %s would hold more than its share of %d bytes",
			circuit.ErrBufferBudget, a.src.name, b.perSource))
		return false
	}
	for b.total+n > b.max {
		g := b.greediestLocked(func(s *budgetSource) int { return s.bytes }, a.src)
		if g == nil || g.bytes <= a.src.bytes+n {
			b.endLocked(a, dropNodeBudget, fmt.Errorf("%w: the node's %d bytes are in use and source %s holds the most",
				circuit.ErrBufferBudget, b.max, a.src.name))
			return false
		}
		b.endLocked(g.victimLocked(), dropNodeBudget, fmt.Errorf("%w: the node's %d bytes were needed by %s and source %s held the most",
			circuit.ErrBufferBudget, b.max, a.src.name, g.name))
	}
	a.bytes += n
	a.src.bytes += n
	b.total += n
	return true
}

// GrowSend grants n bytes to the retransmit buffer of a's circuit
// (circuit.SendBudget) if, with them, its source holds at most its
// share less a sixteenth and the node its budget less a sixteenth
// (sendCap): that sixteenth stays for what circuits receive, whose growth
// ends them when refused; at the default share, a first receive buffer
// (4 KiB) for each of the 1,024 circuits a source may have. While
// circuits wait for room, one that would hold more than its part of what
// sends may hold (divided among its source's circuits, and among all)
// waits its turn too, so that the bytes given back go
// to those that wait rather than to the circuits already holding the
// most. A refused account is woken (SendRoom) when bytes come back. The
// floor is granted always, even beyond the bounds: each circuit's least
// buffer, so that every circuit moves and none waits for another.
func (a *budgetAccount) GrowSend(n int, floor bool) bool {
	b := a.b
	// The wait is logged once b.mu is given back (deferred calls run last
	// first): a log sink that blocks holds no other circuit's room.
	var logWait func()
	defer func() {
		if logWait != nil {
			logWait()
		}
	}()
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.dead {
		return false // being ended: evictLoop aborts it
	}
	if !floor && !b.sendFitsLocked(a, n) {
		if !a.waiting {
			a.waiting = true
			a.src.waiting++
			b.waiting++
			if b.waitLog != nil {
				dest, held, share, waiting := a.src.name, a.src.bytes, sendCap(b.perSource), a.src.waiting
				logWait = func() { b.waitLog(dest, held, share, waiting) }
			}
		}
		return false
	}
	a.stopWaitingLocked()
	a.bytes += n
	a.src.bytes += n
	b.total += n
	return true
}

// StopWaiting: the circuit's Writes no longer wait for the room GrowSend
// refused (circuit.SendBudget), so while no other circuit waits, none is
// held to its part.
func (a *budgetAccount) StopWaiting() {
	a.b.mu.Lock()
	defer a.b.mu.Unlock()
	a.stopWaitingLocked()
}

// sendFitsLocked is GrowSend's bounds, the floor aside.
func (b *resumeBudget) sendFitsLocked(a *budgetAccount, n int) bool {
	srcCap, nodeCap := sendCap(b.perSource), sendCap(b.max)
	if a.src.bytes+n > srcCap || b.total+n > nodeCap {
		return false
	}
	if b.waiting > 0 && !a.waiting {
		part := min(srcCap/len(a.src.accounts), nodeCap/b.accounts)
		return a.bytes+n <= part
	}
	return true
}

// sendCap is what of a bound retransmit buffers may fill.
func sendCap(bound int) int { return bound - bound/16 }

func (a *budgetAccount) stopWaitingLocked() {
	if a.waiting {
		a.waiting = false
		a.src.waiting--
		a.b.waiting--
	}
}

// Shrink gives back n bytes (an ended account already gave back all).
func (a *budgetAccount) Shrink(n int) {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	n = min(n, a.bytes)
	a.bytes -= n
	a.src.bytes -= n
	b.total -= n
	b.freedLocked()
}

// freedLocked: bytes came back; evictLoop wakes the circuits waiting for
// room, if any.
func (b *resumeBudget) freedLocked() {
	if b.waiting > 0 && !b.wake {
		b.wake = true
		b.kickLoop()
	}
}

// Resend draws n positions that a resume has the circuit send again from
// its source's bucket of re-sent bytes, into debt if the bucket holds
// fewer (circuit.ResendBudget). The source is the one the circuit's
// handshake proved: only its own resumes spend its budget.
func (a *budgetAccount) Resend(n int64) {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	bucketOf(b.resend, a.src.name, b.resendRate, b.perSource, now).Refill(now).Tokens -= float64(n)
}

// resendDebt reports whether source's bucket of re-sent bytes is in
// debt, and why: its resume opens are then refused overloaded (respond).
// It draws and counts nothing.
func (b *resumeBudget) resendDebt(source string, now time.Time) (bool, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.resend[source]
	if k == nil || k.Refill(now).Tokens >= 0 {
		return false, ""
	}
	return true, fmt.Sprintf("resumes of %s had more sent again than its budget (a bucket of %d bytes earning %d a second)", source, b.perSource, b.resendRate)
}

// refusedResend counts a resume open refused because the bucket of the
// source its handshake proved was in debt
// (circuitmesh_resume_resend_refused_total).
func (b *resumeBudget) refusedResend() { b.resendRefused.Inc() }

// park: the circuit lost its path and waits for a resume. Beyond the
// bounds the oldest waiting circuit of its source that the node's
// application closed, else its oldest waiting circuit, is ended;
// node-wide, the oldest closed one of the source with the most such,
// else the oldest of the source with the most waiting.
func (a *budgetAccount) park() {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.dead || !a.parkedAt.IsZero() {
		return
	}
	a.parkedAt = time.Now()
	a.src.parked++
	b.parked++
	// A circuit this node's application closed waits only to send its
	// tail to a source that has not acknowledged it: ending it costs that
	// source alone, so it goes before any circuit still in use. Else a
	// member that withholds those acknowledgements holds places that an
	// honest source's circuits, their path lost, need to wait for their
	// resume.
	if a.src.parked > b.maxParkedPerSource {
		v := a.src.oldestParkedLocked(true)
		if v == nil {
			v = a.src.oldestParkedLocked(false)
		}
		b.endLocked(v, dropParkedSource, fmt.Errorf("%w: source %s has more than %d circuits waiting for a resume",
			circuit.ErrBufferBudget, a.src.name, b.maxParkedPerSource))
	}
	if b.parked > b.maxParked {
		if s, v := b.closedParkedLocked(); v != nil {
			b.endLocked(v, dropParkedNode, fmt.Errorf("%w: more than %d circuits wait for a resume and source %s has the most closed here",
				circuit.ErrBufferBudget, b.maxParked, s.name))
			return
		}
		g := b.greediestLocked(func(s *budgetSource) int { return s.parked }, nil)
		b.endLocked(g.oldestParkedLocked(false), dropParkedNode, fmt.Errorf("%w: more than %d circuits wait for a resume and source %s has the most",
			circuit.ErrBufferBudget, b.maxParked, g.name))
	}
}

// closedParkedLocked is the source with the most circuits waiting for a
// resume that this node's application closed, and its oldest of them;
// nil if none waits. It looks at every circuit ending here: it runs only
// when more than MaxParked wait.
func (b *resumeBudget) closedParkedLocked() (*budgetSource, *budgetAccount) {
	var gs *budgetSource
	var gv *budgetAccount
	most := 0
	for _, s := range b.sources {
		n, v := 0, (*budgetAccount)(nil)
		for a := range s.accounts {
			if a.closedParked() {
				n++
				if v == nil || a.parkedAt.Before(v.parkedAt) {
					v = a
				}
			}
		}
		if n > most || n == most && n > 0 && v.parkedAt.Before(gv.parkedAt) {
			gs, gv, most = s, v, n
		}
	}
	return gs, gv
}

// closedParked reports whether a's circuit waits for a resume and this
// node's application closed it (b.mu held).
func (a *budgetAccount) closedParked() bool {
	return !a.parkedAt.IsZero() && a.closed != nil && a.closed()
}

// unpark: a new path took the circuit over, or it gave up.
func (a *budgetAccount) unpark() {
	a.b.mu.Lock()
	defer a.b.mu.Unlock()
	a.unparkLocked()
}

func (a *budgetAccount) unparkLocked() {
	if !a.parkedAt.IsZero() {
		a.parkedAt = time.Time{}
		a.src.parked--
		a.b.parked--
	}
}

// close: the circuit ended; what it still holds goes back. It returns
// why the budget ended it, nil if it did not.
func (a *budgetAccount) close() error {
	a.b.mu.Lock()
	defer a.b.mu.Unlock()
	a.b.forgetLocked(a)
	return a.why
}

// forgetLocked takes a out of the budget.
func (b *resumeBudget) forgetLocked(a *budgetAccount) {
	if _, ok := a.src.accounts[a]; !ok {
		return // already
	}
	a.dead = true
	a.unparkLocked()
	a.stopWaitingLocked()
	a.src.bytes -= a.bytes
	b.total -= a.bytes
	a.bytes = 0
	delete(a.src.accounts, a)
	b.accounts--
	if len(a.src.accounts) == 0 && b.sources[a.src.name] == a.src {
		delete(b.sources, a.src.name)
	}
	b.freedLocked()
}

// endLocked takes a out of the budget at once and has evictLoop end its
// circuit with why.
func (b *resumeBudget) endLocked(a *budgetAccount, reason string, why error) {
	if a.dead {
		return
	}
	b.forgetLocked(a)
	a.why = why
	b.drops.WithLabelValues(reason).Inc()
	b.evict = append(b.evict, a)
	b.kickLoop()
}

func (b *resumeBudget) kickLoop() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// greediestLocked is the source other than except with the largest
// measure, nil if none holds any.
func (b *resumeBudget) greediestLocked(measure func(*budgetSource) int, except *budgetSource) *budgetSource {
	var g *budgetSource
	for _, s := range b.sources {
		if s != except && measure(s) > 0 && (g == nil || measure(s) > measure(g)) {
			g = s
		}
	}
	return g
}

// victimLocked is the circuit of s to end first for memory: the oldest
// waiting for a resume, else the one holding the most.
func (s *budgetSource) victimLocked() *budgetAccount {
	if v := s.oldestParkedLocked(false); v != nil && v.bytes > 0 {
		return v
	}
	var v *budgetAccount
	for a := range s.accounts {
		if v == nil || a.bytes > v.bytes {
			v = a
		}
	}
	return v
}

func (s *budgetSource) oldestParkedLocked(closed bool) *budgetAccount {
	var v *budgetAccount
	for a := range s.accounts {
		if !a.parkedAt.IsZero() && (!closed || a.closedParked()) && (v == nil || a.parkedAt.Before(v.parkedAt)) {
			v = a
		}
	}
	return v
}

// evictLoop ends the circuits the budget took out, and wakes those
// waiting for room for their retransmit buffer once bytes came back:
// outside the budget's lock and the circuits' own (Grow, GrowSend and
// park run under the latter).
func (b *resumeBudget) evictLoop(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-b.kick:
		}
		type victim struct {
			conn *circuit.Resumable
			why  error
		}
		b.mu.Lock()
		var ready []victim
		later := b.evict[:0]
		for _, a := range b.evict {
			if a.conn != nil {
				ready = append(ready, victim{a.conn, a.why})
			} else {
				later = append(later, a) // not bound yet: bind kicks again
			}
		}
		clear(b.evict[len(later):])
		b.evict = later
		var wake []*circuit.Resumable
		if b.wake {
			b.wake = false
			for _, s := range b.sources {
				if s.waiting == 0 {
					continue
				}
				for a := range s.accounts {
					if a.waiting && a.conn != nil {
						wake = append(wake, a.conn)
					}
				}
			}
		}
		b.mu.Unlock()
		for _, v := range ready {
			v.conn.Abort(circuit.CloseOverBudget, v.why)
		}
		for _, r := range wake {
			r.SendRoom()
		}
	}
}
