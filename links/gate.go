package links

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/circuitmesh/circuitmesh/internal/bucket"
)

// Inbound link handshakes in progress (from a peer's first packet until
// its link is up or the handshake ends) are bounded in total and shared
// between source prefixes (an IPv4 address, an IPv6 /64), so that one
// source that handshakes and never proves anything cannot hold the slots
// the other nodes need:
//   - a prefix holds at most handshakeShare slots, plus idle capacity: it
//     may borrow beyond its share only while fewer than handshakeBorrow
//     slots are taken in total, so at least maxPendingHandshakes −
//     handshakeBorrow stay for the other prefixes; while a handshake of
//     it failed within failQuiet, it holds at most failedBurst slots of
//     handshakes that proved no certificate yet, idle capacity or not
//     (honest nodes behind one NAT prove theirs within a round trip or
//     two and keep linking at the prefix's rate);
//   - reserveSlots of the maxPendingHandshakes slots are for handshakes
//     admitted from the reserve (below): a handshake admitted on the
//     node's rate takes a slot only while fewer than
//     maxPendingHandshakes − reserveSlots are taken, so strangers that
//     stall their handshakes from a few prefixes, each at its share,
//     hold at most those, and a validated member's or new peer's first
//     contact still finds a slot (TestAttackStrangersStallFromTenAddresses);
//   - a prefix starts at most handshakeRate new handshakes per second
//     (burst handshakeBurst, or failedBurst while the prefix holds
//     failedBurst slots or a handshake of it failed within failQuiet),
//     which bounds the CPU one source spends: a host that links many
//     nodes one after another links them all at once, a source whose
//     handshakes fail or stay unfinished puts at most about twice
//     failedBurst handshakes' crypto on the node at once;
//   - the node starts at most nodeHandshakeRate per second (burst
//     nodeHandshakeBurst) from all prefixes together, which bounds the CPU
//     the node spends on unauthenticated peers however many prefixes send
//     them; while that rate is contended (below half its burst), one
//     prefix draws at most 1/nodeShareDiv of it (and twice that of its
//     burst), so it takes nodeShareDiv prefixes to keep it spent, while a
//     prefix with many honest nodes behind it links at its own rate on a
//     quiet node. When a
//     prefix cannot draw on it, or the slots outside the reserve's are
//     taken, a validated address (QUIC Retry) may
//     still start one out of a reserve of reserveHandshakeRate per
//     second, if its prefix has reserve tokens of its own
//     (prefixReserveRate, prefixReserveBurst), failed no handshake for
//     failQuiet, and either proved a certificate of the mesh within
//     provenRecent (a member's prefix: then with fewer than
//     prefixReserveBurst reserve handshakes in progress that proved
//     nothing yet) or has no handshake in progress (a new peer's first
//     contact): a peer that links (honest peers do) keeps getting in while
//     a flood of failing handshakes from many prefixes is refused. A
//     handshake that ends before its peer proved a certificate counts as
//     failed, except one from a source address (IP and port) of which a
//     handshake proved a certificate within forgiveWindow before: each
//     proof forgives one such ending (a first packet its dialer gave up
//     on: QUIC retransmits a first packet, and a copy admitted after the
//     node refused the other holds a slot until the handshake timeout,
//     its peer gone, while the dialer links from the same address). A
//     handshake admitted without a validated address (its source may be
//     spoofed) that ends unproven does not count as failed for a
//     member's prefix and uses no proof up; it cannot draw on the
//     reserve either. So a stranger behind a member's address (NAT) or
//     /64 that draws on the reserve is barred like any stranger, and it
//     takes reserveHandshakeRate/prefixReserveRate prefixes of
//     certificate holders to spend the reserve, each of another name: a
//     reserve handshake that proves a name beyond nameReserveRate, over
//     all its prefixes, bars its prefix as a failed one does, longer
//     each time the name does it again, takes its member's standing,
//     and bars its IPv6 /56 if the name did it from another /64 of it
//     before (nameOverLocked). The gate cannot know the name before
//     TLS, so a holder still gets one reserve handshake per prefix it
//     holds (a new peer's first contact) and its name's allowance
//     after;
//   - a handshake that a QUIC timeout ended before TLS completed while
//     the node's own work was behind (since its first packet, at least
//     one in behindShare of the waits of the process's goroutines to
//     run lasted a tenth of the handshake timeout or longer: schedLag)
//     does not count as failed, up to excuseBurst of its prefix at once
//     and one more each excuseEvery: a node starved of CPU cannot
//     finish honest peers' handshakes in time either
//     (TestStarvedNodeDoesNotBarHonestPeerThatTimedOut), and a stranger
//     that stalls its handshakes on such a node is barred once its
//     prefix's excuses are spent, as on any node
//     (TestGateStallingStrangerWhileBehind);
//   - a prefix the gate does not remember enters its table (bounded by
//     maxGatePrefixes) only when a handshake of it is admitted;
//   - once handshakeRetryAt slots are taken counting at most
//     handshakeShare/2 per prefix (spread), a new peer must first prove
//     its address with a QUIC Retry, so spoofed sources cannot take slots;
//     a prefix holding handshakeShare/2 slots must prove its addresses
//     whatever the others do, and so must a peer that only the reserve
//     can admit (the node's rate spent, or only the reserve's slots
//     free). See verifySource.
//
// A refused attempt costs one CONNECTION_REFUSED packet and no crypto.
const (
	maxPendingHandshakes = 128
	// reserveSlots: a handshake admitted on the node's rate takes a slot
	// only while fewer than maxPendingHandshakes − reserveSlots are
	// taken; the last reserveSlots are for handshakes admitted from the
	// reserve.
	reserveSlots          = maxPendingHandshakes / 4
	handshakeShare        = 16
	handshakeBorrow       = maxPendingHandshakes / 2
	handshakeRetryAt      = maxPendingHandshakes / 4
	handshakeRate         = 32
	handshakeBurst        = 64
	failedBurst           = 8
	nodeHandshakeRate     = 64
	nodeHandshakeBurst    = 64
	reserveHandshakeRate  = 16
	reserveHandshakeBurst = 8
	// nodeShareDiv: while the node's rate is contended, a prefix draws at
	// most 1/nodeShareDiv of it (and 2/nodeShareDiv of its burst, at least
	// one token, so that a peer linking a few times in a row is not sent
	// Retries), so it takes nodeShareDiv prefixes to spend it.
	nodeShareDiv = 8
	// prefixReserveRate and prefixReserveBurst bound one prefix's draw on
	// the reserve; a prefix holds at most one reserve handshake that
	// proved nothing yet at once, a member's prefix prefixReserveBurst.
	prefixReserveRate  = 2
	prefixReserveBurst = 2
	// provenRecent: a prefix of which a handshake proved a certificate of
	// the mesh this recently is a member's: it may hold
	// prefixReserveBurst reserve handshakes that proved nothing yet, and
	// start one while others are in progress.
	provenRecent = 10 * time.Minute
	// failQuiet is how long a prefix must go without a failed handshake
	// to draw on the reserve.
	failQuiet = 10 * time.Second
	// maxProofs bounds the source addresses whose recent proofs the gate
	// remembers to forgive one unproven ending each (gate.proofs), and
	// maxProofsPerName those of one certificate name: a holder that proves
	// from more addresses replaces its own oldest proof, not another
	// node's.
	maxProofs        = 256
	maxProofsPerName = 4
	// nameReserveRate and nameReserveBurst bound the reserve handshakes
	// that prove one certificate name, over all the prefixes they come
	// from (twice one prefix's burst: a node with an IPv4 and an IPv6
	// address); a reserve handshake that proves a name beyond it (the
	// name goes over) bars its prefix from the reserve, as a failed one
	// does, for failQuiet doubled each time the name went over before
	// within maxOverBar (at most maxOverBar), and the prefix is no
	// member's until it proves a name within its allowance. When a name
	// goes over from two IPv6 /64s of one /56 in a row, the /56 is barred
	// likewise (overWideBits). The gate remembers at most maxReserveNames
	// names and /56s; a name it cannot remember counts as over.
	nameReserveRate  = prefixReserveRate
	nameReserveBurst = 2 * prefixReserveBurst
	maxOverBar       = 16 * failQuiet
	overWideBits     = 56
	maxReserveNames  = 1024
	// maxGatePrefixes bounds the prefixes the gate remembers (those with
	// handshakes in progress or a rate to recover).
	maxGatePrefixes = 4096
	// excuseBurst and excuseEvery bound the handshakes of one prefix
	// that end unproven by a QUIC timeout while the node was behind
	// (slot.behind) without counting as failed: excuseBurst at once, one
	// more each excuseEvery. In 10 runs of
	// TestStarvedNodeDoesNotBarHonestPeerThatTimedOut, 1 to 5 of the
	// honest node's handshakes ended so.
	excuseBurst = 8
	excuseEvery = time.Minute
)

// ErrBusy: a link handshake was refused because the node has too many in
// progress, in total or from the peer's address. A dial the peer refused
// with QUIC CONNECTION_REFUSED (its gate refusing, its accept queue
// full, or its listener closing) wraps it too, and not ErrClosed.
var ErrBusy = errors.New("too many link handshakes in progress")

// HandshakeStats counts inbound link handshakes, each holding a slot from
// the peer's first packet until its link is up or the handshake ends
// (QUICTransport.HandshakeStats).
type HandshakeStats struct {
	// InProgress is the number of handshakes holding a slot now.
	InProgress int
	// Refused counts handshakes refused at their first packet: the node's
	// slots were taken, or all but the reserve's and the peer could not
	// draw on the reserve (RefusedFull), the source prefix held its share
	// (RefusedShare) or started handshakes too fast or more than its
	// share of the node's rate (RefusedRate), or the node started as many
	// as it spends CPU on and the peer could not draw on the reserve
	// (RefusedNodeRate).
	RefusedFull, RefusedShare, RefusedRate, RefusedNodeRate uint64
	// Reserved counts handshakes admitted from the reserve (validated
	// addresses of members' prefixes, or of prefixes without recent
	// failures) while the node's rate was spent.
	Reserved uint64
	// Retries counts first packets answered with a QUIC Retry (address
	// validation) because the node was busy.
	Retries uint64
	// Failed counts handshakes that got a slot and did not end in a link
	// (timeout, bad hello or certificate, ...).
	Failed uint64
	// Excused counts those of Failed that a QUIC timeout ended before
	// TLS completed while the node's own work was behind, and that did
	// not count against their source prefix (its excuses; see gate).
	Excused uint64
}

// gate bounds inbound handshakes in progress; see maxPendingHandshakes.
type gate struct {
	mu    sync.Mutex
	total int
	// spread is the slots taken counting at most handshakeShare/2 per
	// prefix: what many prefixes hold, not what one holds.
	spread   int
	prefixes map[netip.Prefix]*prefixState
	// proofs holds, per source address (IP and port), when a handshake
	// from it last proved a certificate of the mesh and the certificate's
	// node name, for forgiveWindow (at most maxProofs, maxProofsPerName
	// per name; see noteProofLocked, forgivenLocked); proofsOf counts
	// them per name.
	proofs   map[netip.AddrPort]proof
	proofsOf map[string]int
	// reserveOf is, per certificate name, its allowance of reserve
	// handshakes that prove it (nameReserveRate; see proveAt) and how it
	// went over; overWide the same per IPv6 /56 (overWideBits).
	reserveOf map[string]*overState
	overWide  map[netip.Prefix]*overState
	// forgiveWindow is twice the handshake timeout.
	forgiveWindow time.Duration
	// node and reserve are the node-wide rates (nodeHandshakeRate,
	// reserveHandshakeRate).
	node    bucket.Shared
	reserve bucket.Bucket
	// prefixRate and prefixBurst are each prefix's rate (handshakeRate,
	// handshakeBurst).
	prefixRate, prefixBurst float64

	refusedFull, refusedShare, refusedRate, refusedNode, reserved, retries, failed, excused atomic.Uint64
}

// overState is a name's allowance of reserve handshakes that prove it
// and, for a name or an IPv6 /56, how often and when it went over its
// allowance (see overLocked).
type overState struct {
	allowance bucket.Bucket
	over      int          // times in a row, each within maxOverBar of the last
	overAt    time.Time    // the last time
	until     time.Time    // for a /56: barred from the reserve until
	from      netip.Prefix // for a /56: the /64 it last went over from
}

// overLocked records that o went over at now and says how long the
// prefix it went over from is barred: failQuiet, doubled for each time
// within maxOverBar before, at most maxOverBar. g.mu is held.
func (o *overState) overLocked(now time.Time) time.Duration {
	if o.overAt.IsZero() || now.Sub(o.overAt) >= maxOverBar {
		o.over = 0
	}
	o.over++
	o.overAt = now
	bar := failQuiet
	for i := 1; i < o.over && bar < maxOverBar; i++ {
		bar *= 2
	}
	return min(bar, maxOverBar)
}

// sweepIdle drops the idle entries of m once it holds maxReserveNames,
// and returns how many it holds then.
func sweepIdle[K comparable](m map[K]*overState, now time.Time) int {
	if len(m) >= maxReserveNames {
		for k, o := range m {
			if o.idle(now) {
				delete(m, k)
			}
		}
	}
	return len(m)
}

// idle says whether o holds nothing the gate must remember at now: a
// full allowance, and no time over within maxOverBar.
func (o *overState) idle(now time.Time) bool {
	return o.allowance.Refill(now).Tokens >= o.allowance.Burst && (o.overAt.IsZero() || now.Sub(o.overAt) >= maxOverBar) && !now.Before(o.until)
}

// proof is a recent certificate proof from one source address.
type proof struct {
	at   time.Time
	name string // the certificate's node name
}

type prefixState struct {
	n        int // slots held
	unproven int // of them, those whose peer proved no certificate yet
	tokens   float64
	last     time.Time
	lastFail time.Time // when a handshake of the prefix last ended before it proved a certificate, not forgiven (forgivenLocked)
	// nodeShare is the prefix's share of the node's rate (g.node),
	// reserveTokens its share of the reserve (refilled since last),
	// reserving the reserve handshakes it has in progress that proved
	// nothing yet.
	nodeShare     bucket.Bucket
	reserveTokens float64
	reserving     int
	provenAt      time.Time // when a handshake of the prefix last proved a certificate of the mesh (zero: it last proved a name over its allowance)
	barredUntil   time.Time // a handshake of the prefix proved a name over its allowance: no reserve until then
	// excuses is the prefix's allowance of handshakes that time out
	// while the node is behind without counting as failed (excuseBurst,
	// excuseEvery).
	excuses bucket.Bucket
}

// tokensAt is the rate allowance at now of the prefix in state ps: what
// it had, plus what it earned since at the prefix rate, up to its burst.
func (g *gate) tokensAt(ps *prefixState, now time.Time) float64 {
	burst := g.prefixBurst
	if ps.n >= failedBurst || ps.failedWithin(now) {
		burst = min(burst, failedBurst)
	}
	return min(burst, ps.tokens+max(0, now.Sub(ps.last).Seconds())*g.prefixRate)
}

// overShareLocked says whether the prefix in state ps is held to its share
// of the node's rate now and has spent it: shares apply only while the
// node's rate is contended (below half its burst), so that one prefix
// with many honest nodes behind it links at its own rate on a quiet
// node. g.mu is held.
func (g *gate) overShareLocked(ps *prefixState, now time.Time) bool {
	return g.node.OverShare(&ps.nodeShare, now)
}

// atShareLocked says whether the prefix in state ps holds its share of
// the slots at now: handshakeShare once handshakeBorrow slots are taken,
// and failedBurst slots of handshakes that proved nothing yet, whatever
// the others hold, while a handshake of it failed within failQuiet. g.mu
// is held.
func (g *gate) atShareLocked(ps *prefixState, now time.Time) bool {
	if ps.failedWithin(now) && ps.unproven >= failedBurst {
		return true
	}
	return ps.n >= handshakeShare && g.total >= handshakeBorrow
}

// onRateLocked says whether a handshake of the prefix in state ps may be
// admitted on the node's rate at now, not from the reserve: a slot
// outside the reserve's is free (reserveSlots), and the node's rate and
// the prefix's share of it have a token. g.mu is held.
func (g *gate) onRateLocked(ps *prefixState, now time.Time) bool {
	return g.total < maxPendingHandshakes-reserveSlots && !g.overShareLocked(ps, now) && g.node.Refill(now).Tokens >= 1
}

// refillLocked brings the prefix's allowances up to now. g.mu is held.
func (g *gate) refillLocked(ps *prefixState, now time.Time) {
	dt := max(0, now.Sub(ps.last).Seconds())
	ps.tokens = g.tokensAt(ps, now)
	ps.nodeShare.Refill(now)
	ps.reserveTokens = min(prefixReserveBurst, ps.reserveTokens+dt*prefixReserveRate)
	if now.After(ps.last) {
		ps.last = now
	}
}

// newPrefixLocked is the state of a prefix the gate does not remember.
func (g *gate) newPrefixLocked(now time.Time) *prefixState {
	return &prefixState{tokens: g.prefixBurst, nodeShare: g.node.Share(now), reserveTokens: prefixReserveBurst, last: now,
		excuses: bucket.Full(1/excuseEvery.Seconds(), excuseBurst, now)}
}

// failedWithin says whether a handshake of the prefix failed within
// failQuiet before now.
func (ps *prefixState) failedWithin(now time.Time) bool {
	return !ps.lastFail.IsZero() && now.Sub(ps.lastFail) < failQuiet
}

// member says whether a handshake of the prefix proved a certificate of
// the mesh within provenRecent before now.
func (ps *prefixState) member(now time.Time) bool {
	return !ps.provenAt.IsZero() && now.Sub(ps.provenAt) < provenRecent
}

func newGate() *gate {
	return newGateRate(nodeHandshakeRate, nodeHandshakeBurst)
}

// newGateRate is a gate whose node-wide rate is rate per second (burst).
func newGateRate(rate, burst float64) *gate {
	now := time.Now()
	return &gate{
		prefixes:      make(map[netip.Prefix]*prefixState),
		proofs:        make(map[netip.AddrPort]proof),
		proofsOf:      make(map[string]int),
		reserveOf:     make(map[string]*overState),
		overWide:      make(map[netip.Prefix]*overState),
		forgiveWindow: 2 * DefaultHandshakeTimeout,
		node:          bucket.NewShared(rate, burst, nodeShareDiv, now),
		reserve:       bucket.Full(reserveHandshakeRate, reserveHandshakeBurst, now),
		prefixRate:    handshakeRate,
		prefixBurst:   handshakeBurst,
	}
}

// SourcePrefix is the source prefix the limits on strangers account a
// remote address to (docs/SECURITY.md, Limits): the IPv4 address, or the
// /64 of an IPv6 address.
func SourcePrefix(a net.Addr) netip.Prefix {
	ip := addrPort(a).Addr()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// addrPort is the IP (unmapped) and port of a.
func addrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	if ua, ok := a.(*net.UDPAddr); ok {
		ap = ua.AddrPort()
	} else if p, err := netip.ParseAddrPort(a.String()); err == nil {
		ap = p
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// slot is one admitted handshake; release is idempotent.
type slot struct {
	g      *gate
	prefix netip.Prefix
	source netip.AddrPort
	once   sync.Once
	// unproven: the slot counts in its prefix's unproven (under g.mu),
	// until its peer proves a certificate or it is released.
	unproven bool
	// verified: the peer proved its address (a QUIC Retry token) before
	// the handshake was admitted; else its source may be spoofed.
	verified bool
	// reserve: the handshake was admitted from the reserve (and holds
	// it until it proves a certificate or ends: under g.mu).
	reserve bool
	linked  atomic.Bool
	// proven: the peer proved a certificate of the mesh, in its TLS
	// handshake or its hello (the handshake may still fail after,
	// without counting against the prefix's use of the reserve).
	proven atomic.Bool
	// accepted: accept owns the release (the connection completed TLS
	// and was accepted), not the end of the connection.
	accepted atomic.Bool
	// checked: the peer's hello passed its version and mesh checks and
	// its certificate was checked, whatever the outcome.
	checked atomic.Bool
	// behind: the handshake ended by a QUIC timeout before TLS completed
	// while the node's own work was behind (schedLag), so the node may
	// be why it did not finish.
	behind atomic.Bool
}

func (s *slot) release() { s.releaseAt(time.Now()) }

// prove records that the peer proved a certificate of the mesh naming
// node name.
func (s *slot) prove(name string) { s.proveAt(name, time.Now()) }

// proveAt records that the peer proved a certificate of the mesh naming
// node name at now: its prefix is a member's (provenRecent), its source
// address may have one handshake end unproven without counting as failed
// (forgivenLocked), and the handshake no longer holds the prefix's
// reserve. A handshake admitted from the reserve that proves a name
// beyond the name's allowance (nameReserveRate) bars its prefix from the
// reserve for failQuiet or longer if the name went over before
// (overLocked), and its /56 if the name went over from another /64 of it
// just before; the prefix is then no member's: one holder spreading
// handshakes over many prefixes draws on the reserve about once per
// prefix it holds, then ever less often, not as many members would.
func (s *slot) proveAt(name string, now time.Time) {
	if s.proven.Swap(true) {
		return
	}
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	g.noteProofLocked(s.source, name, now)
	if ps := g.prefixes[s.prefix]; ps != nil {
		if bar, over := g.nameOverLocked(s, name, now); over {
			ps.lastFail = now
			ps.provenAt = time.Time{}
			if until := now.Add(bar); until.After(ps.barredUntil) {
				ps.barredUntil = until
			}
		} else if now.After(ps.provenAt) {
			ps.provenAt = now
		}
		if s.reserve {
			s.reserve = false
			ps.reserving--
		}
		s.leaveUnprovenLocked(ps)
	}
}

// leaveUnprovenLocked takes the slot out of its prefix's unproven count (ps),
// once. g.mu is held.
func (s *slot) leaveUnprovenLocked(ps *prefixState) {
	if s.unproven {
		s.unproven = false
		ps.unproven--
	}
}

// strike records that the handshake's peer did what no honest node does
// (more handshakes of its name at once than maxAcceptsPerName): its
// prefix counts as having failed a handshake now, so it draws on the
// reserve no more and holds at most failedBurst handshakes that proved
// nothing for failQuiet.
func (s *slot) strike() {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if ps := g.prefixes[s.prefix]; ps != nil {
		ps.lastFail = time.Now()
	}
}

// releaseAt is release at time now.
func (s *slot) releaseAt(now time.Time) {
	s.once.Do(func() {
		g := s.g
		failed := !s.linked.Load()
		if failed {
			g.failed.Add(1)
		}
		unproven := failed && !s.proven.Load()
		g.mu.Lock()
		defer g.mu.Unlock()
		g.total--
		if ps := g.prefixes[s.prefix]; ps != nil {
			s.leaveUnprovenLocked(ps)
			switch {
			case !unproven:
			case !s.verified && ps.member(now):
				// The source may be spoofed: a packet with a member's
				// address neither bars its prefix nor uses its proof up.
			case s.verified && g.forgivenLocked(s.source, now):
			case s.behind.Load() && ps.excuses.Refill(now).Tokens >= 1:
				// Timed out while the node was behind: not counted while
				// the prefix has excuses.
				ps.excuses.Tokens--
				g.excused.Add(1)
			default:
				ps.lastFail = now
			}
			if s.reserve {
				s.reserve = false
				ps.reserving--
			}
			ps.n--
			if ps.n < handshakeShare/2 {
				g.spread--
			}
		}
	})
}

// enter admits a handshake from addr or says why not (wrapping ErrBusy);
// verified says the peer proved its address (a QUIC Retry token).
func (g *gate) enter(addr net.Addr, verified bool, now time.Time) (*slot, error) {
	p := SourcePrefix(addr)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total >= maxPendingHandshakes {
		g.refusedFull.Add(1)
		return nil, fmt.Errorf("%w: %d in progress, the node's bound", ErrBusy, g.total)
	}
	// A prefix the gate does not remember is entered in its table only
	// if the handshake is admitted: refused first packets from spoofed
	// addresses leave no state.
	ps, known := g.prefixes[p]
	if !known {
		ps = g.newPrefixLocked(now)
	}
	g.refillLocked(ps, now)
	if g.atShareLocked(ps, now) {
		g.refusedShare.Add(1)
		return nil, fmt.Errorf("%w: %d from %s, its share", ErrBusy, ps.n, p)
	}
	if ps.tokens < 1 {
		g.refusedRate.Add(1)
		return nil, fmt.Errorf("%w: %s starts more than %v per second", ErrBusy, p, g.prefixRate)
	}
	// The prefix's share of the node's rate and a slot outside the
	// reserve's, or else the reserve for a validated address of a prefix
	// that links.
	fromReserve := false
	switch {
	case g.onRateLocked(ps, now):
	case verified && g.mayReserveLocked(p, ps, now):
		fromReserve = true
	case g.total >= maxPendingHandshakes-reserveSlots:
		g.refusedFull.Add(1)
		return nil, fmt.Errorf("%w: %d in progress, all but the %d slots of the reserve", ErrBusy, g.total, reserveSlots)
	case g.overShareLocked(ps, now):
		g.refusedRate.Add(1)
		rate, _ := g.node.ShareRate()
		return nil, fmt.Errorf("%w: %s starts more than its share (%v per second) of the node's rate", ErrBusy, p, rate)
	default:
		g.refusedNode.Add(1)
		return nil, fmt.Errorf("%w: the node starts at most %v per second", ErrBusy, g.node.Rate)
	}
	if !known {
		if len(g.prefixes) >= maxGatePrefixes {
			g.forgetIdleLocked(now)
		}
		if len(g.prefixes) >= maxGatePrefixes {
			g.refusedFull.Add(1)
			return nil, fmt.Errorf("%w: %d source prefixes busy", ErrBusy, len(g.prefixes))
		}
		g.prefixes[p] = ps
	}
	if fromReserve {
		g.reserve.Tokens--
		ps.reserveTokens--
		ps.reserving++
		g.reserved.Add(1)
	} else {
		g.node.Take(now)
		g.node.Charge(&ps.nodeShare, now) // a debt repaid in 2 s at most
	}
	ps.tokens--
	if ps.n < handshakeShare/2 {
		g.spread++
	}
	ps.n++
	g.total++
	ps.unproven++
	return &slot{g: g, prefix: p, source: addrPort(addr), verified: verified, reserve: fromReserve, unproven: true}, nil
}

// noteProofLocked records that a handshake from source proved a
// certificate of the mesh naming node name at now. The table stays fair
// and bounded: a name holding maxProofsPerName proofs replaces its own
// oldest; else, when the table is full, it drops the proofs older than
// forgiveWindow, then the oldest proof of a name holding the most. So a
// holder that proves from many addresses evicts no other node's proof
// until the table holds as many of its own as of any other name's.
// g.mu is held.
func (g *gate) noteProofLocked(source netip.AddrPort, name string, now time.Time) {
	g.dropProofLocked(source)
	if g.proofsOf[name] >= maxProofsPerName {
		g.dropOldestProofLocked(func(p proof) bool { return p.name == name })
	} else if len(g.proofs) >= maxProofs {
		for a, p := range g.proofs {
			if now.Sub(p.at) >= g.forgiveWindow {
				g.dropProofLocked(a)
			}
		}
		most := 0
		for _, n := range g.proofsOf {
			most = max(most, n)
		}
		if len(g.proofs) >= maxProofs {
			g.dropOldestProofLocked(func(p proof) bool { return g.proofsOf[p.name] == most })
		}
	}
	g.proofs[source] = proof{at: now, name: name}
	g.proofsOf[name]++
}

// dropOldestProofLocked drops the oldest proof for which which holds.
// g.mu is held.
func (g *gate) dropOldestProofLocked(which func(proof) bool) {
	var oldest netip.AddrPort
	var at time.Time
	for a, p := range g.proofs {
		if which(p) && (at.IsZero() || p.at.Before(at)) {
			oldest, at = a, p.at
		}
	}
	if !at.IsZero() {
		g.dropProofLocked(oldest)
	}
}

// dropProofLocked forgets the proof from source, if any. g.mu is held.
func (g *gate) dropProofLocked(source netip.AddrPort) (proof, bool) {
	p, ok := g.proofs[source]
	if !ok {
		return p, false
	}
	delete(g.proofs, source)
	if g.proofsOf[p.name]--; g.proofsOf[p.name] <= 0 {
		delete(g.proofsOf, p.name)
	}
	return p, true
}

// forgivenLocked says whether a handshake from source that ends unproven
// at now is forgiven: a handshake from source proved a certificate within
// forgiveWindow before. It uses the proof up (one ending per proof).
// g.mu is held.
func (g *gate) forgivenLocked(source netip.AddrPort, now time.Time) bool {
	p, ok := g.dropProofLocked(source)
	return ok && now.Sub(p.at) < g.forgiveWindow
}

// nameOverLocked takes the reserve handshake of slot s, which proved
// name at now, from name's allowance, or says the name went over it and
// for how long s's prefix is barred; a name went over from two /64s of
// one IPv6 /56 in a row also bars the /56 (overWideBits). A handshake not
// admitted from the reserve takes nothing. A name the gate cannot
// remember (maxReserveNames names not idle) counts as over, which the
// reserve's rate does not let happen: a name is idle 2 s after its last
// reserve handshake unless it went over within maxOverBar, which takes 5
// reserve handshakes, so at most about 8+16×2 + (8+16×160)/5 < 600 names
// are not idle at once. g.mu is held.
func (g *gate) nameOverLocked(s *slot, name string, now time.Time) (time.Duration, bool) {
	if !s.reserve {
		return 0, false
	}
	o := g.reserveOf[name]
	if o == nil {
		if sweepIdle(g.reserveOf, now) >= maxReserveNames {
			return failQuiet, true
		}
		o = &overState{allowance: bucket.Full(nameReserveRate, nameReserveBurst, now)}
		g.reserveOf[name] = o
	}
	if o.allowance.Refill(now).Tokens >= 1 {
		o.allowance.Tokens--
		return 0, false
	}
	bar := o.overLocked(now)
	if s.prefix.Addr().Is6() {
		wide, _ := s.prefix.Addr().Prefix(overWideBits)
		w := g.overWide[wide]
		if w == nil {
			if sweepIdle(g.overWide, now) < maxReserveNames {
				w = &overState{}
				g.overWide[wide] = w
			}
		}
		if w != nil {
			if w.from.IsValid() && w.from != s.prefix && now.Sub(w.overAt) < maxOverBar {
				if until := now.Add(w.overLocked(now)); until.After(w.until) {
					w.until = until
				}
			} else {
				w.overAt = now
			}
			w.from = s.prefix
		}
	}
	return bar, true
}

// wideBarredLocked says whether the IPv6 /56 of prefix p is barred from
// the reserve at now (nameOverLocked). g.mu is held.
func (g *gate) wideBarredLocked(p netip.Prefix, now time.Time) bool {
	if !p.Addr().Is6() {
		return false
	}
	wide, _ := p.Addr().Prefix(overWideBits)
	w := g.overWide[wide]
	return w != nil && now.Before(w.until)
}

// mayReserveLocked says whether a handshake of prefix p in state ps
// (its allowances refilled to now) may draw on the reserve now: the
// prefix has reserve tokens of its own, failed no handshake within
// failQuiet, is not barred for proving a name over its allowance (nor
// its /56), and either proved a certificate within provenRecent and
// holds fewer than prefixReserveBurst reserve handshakes that proved
// nothing yet, or has no handshake in progress at all (a new peer's first
// contact). g.mu is held.
func (g *gate) mayReserveLocked(p netip.Prefix, ps *prefixState, now time.Time) bool {
	switch {
	case ps.reserveTokens < 1 || ps.failedWithin(now) || now.Before(ps.barredUntil) || g.wideBarredLocked(p, now):
		return false
	case ps.member(now):
		if ps.reserving >= prefixReserveBurst {
			return false
		}
	case ps.n > 0:
		return false
	}
	return g.reserve.Refill(now).Tokens >= 1
}

// heldBy is the number of slots addr's prefix holds.
func (g *gate) heldBy(addr net.Addr) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ps := g.prefixes[SourcePrefix(addr)]; ps != nil {
		return ps.n
	}
	return 0
}

// forgetIdleLocked drops prefixes with no handshake in progress that
// started none and failed none for failQuiet (their allowances have
// recovered): first those that proved no certificate within
// provenRecent, and members' prefixes only if that freed nothing (a
// member's prefix forgotten is a new prefix again). g.mu is held.
func (g *gate) forgetIdleLocked(now time.Time) {
	for _, members := range []bool{false, true} {
		for p, ps := range g.prefixes {
			if ps.n == 0 && now.Sub(ps.last) >= failQuiet && now.Sub(ps.lastFail) >= failQuiet && !now.Before(ps.barredUntil) && ps.member(now) == members {
				delete(g.prefixes, p)
			}
		}
		if len(g.prefixes) < maxGatePrefixes {
			return
		}
	}
}

// verifySource is quic.Transport.VerifySourceAddress: under load, a new
// peer proves its address with a Retry before it may take a slot.
//
// quic-go queues the Retries it is to send in a short queue (8) shared by
// all sources and drops a first packet that finds it full: the honest peer
// whose first packet meets a burst of an attacker's then waits a whole
// retransmission timeout (200 ms, doubling). So
//   - a peer is sent a Retry only when its own prefix is busy or many
//     prefixes are (spread), not because one other prefix holds many
//     slots: then honest peers of other prefixes never queue for one;
//   - a peer that enter refuses anyway is not sent a Retry but refused at
//     once (connContext), at the cost of one small packet;
//   - while the node's rate is spent, or only the reserve's slots are
//     free (reserveSlots), a peer that may draw on the reserve is sent a
//     Retry (the reserve is for validated addresses); peers of prefixes
//     whose handshakes failed are refused, so a flood of failing
//     handshakes does not fill the Retry queue.
func (g *gate) verifySource(addr net.Addr) bool { return g.verifySourceAt(addr, time.Now()) }

// verifySourceAt is verifySource at time now.
func (g *gate) verifySourceAt(addr net.Addr, now time.Time) bool {
	p := SourcePrefix(addr)
	g.mu.Lock()
	ps := g.peekLocked(g.prefixes[p], now)
	busy := g.spread >= handshakeRetryAt || ps.n >= handshakeShare/2 ||
		!g.onRateLocked(ps, now) // only the reserve is left, for validated addresses
	busy = busy && !g.refusesLocked(p, ps, now)
	g.mu.Unlock()
	if busy {
		g.retries.Add(1)
	}
	return busy
}

// peekLocked is a copy of the prefix state ps (nil: new) with its
// allowances refilled to now. g.mu is held.
func (g *gate) peekLocked(ps *prefixState, now time.Time) *prefixState {
	if ps == nil {
		return g.newPrefixLocked(now)
	}
	c := *ps
	g.refillLocked(&c, now)
	return &c
}

// refusesLocked says whether enter would refuse a handshake of the prefix
// in state ps (from peekLocked) now. g.mu is held.
func (g *gate) refusesLocked(p netip.Prefix, ps *prefixState, now time.Time) bool {
	if g.total >= maxPendingHandshakes {
		return true
	}
	if g.atShareLocked(ps, now) || ps.tokens < 1 {
		return true
	}
	return !g.onRateLocked(ps, now) && !g.mayReserveLocked(p, ps, now)
}

type slotKey struct{}

// connContext is quic.Transport.ConnContext: it takes a slot for the new
// connection or refuses it. The slot is released when the link handshake
// ends (accept), or when quic-go gives the connection up before accept
// took it; then, if a QUIC timeout ended it while the node was behind
// (t.lag, since the slot was taken), the slot says so (slot.behind), and
// the peer's refusal of this node's certificate in TLS is reported as the
// link's refusal.
func (t *QUICTransport) connContext(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
	s, err := t.gate.enter(info.RemoteAddr, info.AddrVerified, time.Now())
	if err != nil {
		t.noteHandshakeFailure(info.RemoteAddr, err)
		return nil, err
	}
	from := t.lag.mark()
	// The connection's 1-RTT packets come from this address while it
	// lives, once the TLS handshake showed the peer receives there
	// (links refuse migration: pathguard.go).
	path := t.paths.register(info.RemoteAddr)
	context.AfterFunc(ctx, func() {
		defer path.end()
		if s.accepted.Load() {
			return
		}
		cause := context.Cause(ctx)
		if timedOut(cause) && t.lag.behindSince(from) {
			s.behind.Store(true)
		}
		s.release()
		if peerRefusedCertificate(cause) && t.paths.answered(info.RemoteAddr) {
			// The peer refused this node's certificate in TLS (this
			// node's own refusals were reported by verifying). Only
			// from an address whose peer answered a handshake packet of
			// the node's: a first packet carrying this close needs no
			// answer, from whatever address it claims.
			t.refusedIn(info.RemoteAddr, t.tlsRefusal(info.RemoteAddr, cause))
		}
	})
	return context.WithValue(context.WithValue(ctx, slotKey{}, s), pathKey{}, path), nil
}

// timedOut says whether err, the end of a connection, is one of QUIC's
// timeouts: the handshake's, or idle.
func timedOut(err error) bool {
	var idle *quic.IdleTimeoutError
	var hs *quic.HandshakeTimeoutError
	return errors.As(err, &idle) || errors.As(err, &hs)
}

// slotOf is the gate slot of an accepted connection (nil for a dialled
// one).
func slotOf(conn *quic.Conn) *slot {
	s, _ := conn.Context().Value(slotKey{}).(*slot)
	return s
}

// HandshakeStats reports the inbound handshake counters.
func (t *QUICTransport) HandshakeStats() HandshakeStats { return t.gate.stats() }

// stats is the gate's counters (HandshakeStats).
func (g *gate) stats() HandshakeStats {
	g.mu.Lock()
	n := g.total
	g.mu.Unlock()
	return HandshakeStats{
		InProgress: n, RefusedFull: g.refusedFull.Load(), RefusedShare: g.refusedShare.Load(),
		RefusedRate: g.refusedRate.Load(), RefusedNodeRate: g.refusedNode.Load(), Reserved: g.reserved.Load(),
		Retries: g.retries.Load(), Failed: g.failed.Load(), Excused: g.excused.Load(),
	}
}

// noteHandshakeFailure logs failed and refused inbound handshakes as one
// WARN per handshakeLogPeriod with the counts so far, never a line per
// attempt.
func (t *QUICTransport) noteHandshakeFailure(remote net.Addr, err error) {
	st := t.HandshakeStats()
	t.floods.Warn("handshakes", "inbound link handshakes failing or refused (counts since start)",
		"last_remote", remote.String(), "last_err", err, "in_progress", st.InProgress, "failed", st.Failed,
		"refused_full", st.RefusedFull, "refused_share", st.RefusedShare, "refused_rate", st.RefusedRate,
		"refused_node_rate", st.RefusedNodeRate, "reserved", st.Reserved, "retries", st.Retries, "excused", st.Excused)
}

// handshakeLogPeriod spaces the WARN lines of noteHandshakeFailure.
const handshakeLogPeriod = time.Minute
