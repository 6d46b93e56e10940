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
)

// Inbound link handshakes in progress (from a peer's first packet until its
// hello proved a certificate of the mesh) are bounded in total and shared
// between source prefixes (an IPv4 address, an IPv6 /64), so that one
// source that handshakes and never proves anything cannot hold the slots
// the other nodes need:
//   - a prefix holds at most handshakeShare slots, plus idle capacity: it
//     may borrow beyond its share only while fewer than handshakeBorrow
//     slots are taken in total, so at least maxPendingHandshakes −
//     handshakeBorrow stay for the other prefixes;
//   - a prefix starts at most handshakeRate new handshakes per second
//     (burst handshakeBurst), which bounds the CPU one source spends;
//   - once handshakeRetryAt slots are taken counting at most
//     handshakeShare/2 per prefix (spread), a new peer must first prove
//     its address with a QUIC Retry, so spoofed sources cannot take slots;
//     a prefix holding handshakeShare/2 slots must prove its addresses
//     whatever the others do. See verifySource.
//
// A refused attempt costs one CONNECTION_REFUSED packet and no crypto.
const (
	maxPendingHandshakes = 128
	handshakeShare       = 16
	handshakeBorrow      = maxPendingHandshakes / 2
	handshakeRetryAt     = maxPendingHandshakes / 4
	handshakeRate        = 32
	handshakeBurst       = 64
	// maxGatePrefixes bounds the prefixes the gate remembers (those with
	// handshakes in progress or a rate to recover).
	maxGatePrefixes = 4096
)

// ErrBusy: a link handshake was refused because the node has too many in
// progress, in total or from the peer's address.
var ErrBusy = errors.New("too many link handshakes in progress")

// HandshakeStats counts inbound link handshakes before the peer proved a
// certificate (QUICTransport.HandshakeStats).
type HandshakeStats struct {
	// InProgress is the number of handshakes holding a slot now.
	InProgress int
	// Refused counts handshakes refused at their first packet: the node's
	// slots were taken (RefusedFull), the source prefix held its share
	// (RefusedShare) or started handshakes too fast (RefusedRate).
	RefusedFull, RefusedShare, RefusedRate uint64
	// Retries counts first packets answered with a QUIC Retry (address
	// validation) because the node was busy.
	Retries uint64
	// Failed counts handshakes that got a slot and did not end in a link
	// (timeout, bad hello or certificate, ...).
	Failed uint64
}

// gate bounds inbound handshakes in progress; see maxPendingHandshakes.
type gate struct {
	mu    sync.Mutex
	total int
	// spread is the slots taken counting at most handshakeShare/2 per
	// prefix: what many prefixes hold, not what one holds.
	spread   int
	prefixes map[netip.Prefix]*prefixState

	refusedFull, refusedShare, refusedRate, retries, failed atomic.Uint64
}

type prefixState struct {
	n      int // slots held
	tokens float64
	last   time.Time
}

func newGate() *gate { return &gate{prefixes: make(map[netip.Prefix]*prefixState)} }

// prefixOf is the prefix a remote address is accounted to: the IPv4
// address, or the /64 of an IPv6 address.
func prefixOf(a net.Addr) netip.Prefix {
	var ap netip.AddrPort
	if ua, ok := a.(*net.UDPAddr); ok {
		ap = ua.AddrPort()
	} else if p, err := netip.ParseAddrPort(a.String()); err == nil {
		ap = p
	}
	ip := ap.Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// slot is one admitted handshake; release is idempotent.
type slot struct {
	g      *gate
	prefix netip.Prefix
	once   sync.Once
	linked atomic.Bool
}

func (s *slot) release() {
	s.once.Do(func() {
		g := s.g
		if !s.linked.Load() {
			g.failed.Add(1)
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		g.total--
		if ps := g.prefixes[s.prefix]; ps != nil {
			ps.n--
			if ps.n < handshakeShare/2 {
				g.spread--
			}
		}
	})
}

// enter admits a handshake from addr or says why not (wrapping ErrBusy).
func (g *gate) enter(addr net.Addr, now time.Time) (*slot, error) {
	p := prefixOf(addr)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total >= maxPendingHandshakes {
		g.refusedFull.Add(1)
		return nil, fmt.Errorf("%w: %d in progress, the node's bound", ErrBusy, g.total)
	}
	ps := g.prefixes[p]
	if ps == nil {
		if len(g.prefixes) >= maxGatePrefixes {
			g.forgetIdleLocked(now)
		}
		if len(g.prefixes) >= maxGatePrefixes {
			g.refusedFull.Add(1)
			return nil, fmt.Errorf("%w: %d source prefixes busy", ErrBusy, len(g.prefixes))
		}
		ps = &prefixState{tokens: handshakeBurst, last: now}
		g.prefixes[p] = ps
	}
	ps.tokens = min(handshakeBurst, ps.tokens+now.Sub(ps.last).Seconds()*handshakeRate)
	ps.last = now
	if ps.n >= handshakeShare && g.total >= handshakeBorrow {
		g.refusedShare.Add(1)
		return nil, fmt.Errorf("%w: %d from %s, its share", ErrBusy, ps.n, p)
	}
	if ps.tokens < 1 {
		g.refusedRate.Add(1)
		return nil, fmt.Errorf("%w: %s starts more than %d per second", ErrBusy, p, handshakeRate)
	}
	ps.tokens--
	if ps.n < handshakeShare/2 {
		g.spread++
	}
	ps.n++
	g.total++
	return &slot{g: g, prefix: p}, nil
}

// heldBy is the number of slots addr's prefix holds.
func (g *gate) heldBy(addr net.Addr) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ps := g.prefixes[prefixOf(addr)]; ps != nil {
		return ps.n
	}
	return 0
}

// forgetIdleLocked drops prefixes with no handshake in progress whose rate
// allowance has recovered. g.mu is held.
func (g *gate) forgetIdleLocked(now time.Time) {
	for p, ps := range g.prefixes {
		if ps.n == 0 && now.Sub(ps.last).Seconds()*handshakeRate >= handshakeBurst {
			delete(g.prefixes, p)
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
//     once (connContext), at the cost of one small packet.
func (g *gate) verifySource(addr net.Addr) bool {
	p := prefixOf(addr)
	now := time.Now()
	g.mu.Lock()
	ps := g.prefixes[p]
	busy := g.spread >= handshakeRetryAt || ps != nil && ps.n >= handshakeShare/2
	busy = busy && !g.refusesLocked(ps, now)
	g.mu.Unlock()
	if busy {
		g.retries.Add(1)
	}
	return busy
}

// refusesLocked says whether enter would refuse a handshake of the prefix
// in state ps (nil: new) now, without changing anything. g.mu is held.
func (g *gate) refusesLocked(ps *prefixState, now time.Time) bool {
	if g.total >= maxPendingHandshakes {
		return true
	}
	return ps != nil && (ps.n >= handshakeShare && g.total >= handshakeBorrow ||
		min(handshakeBurst, ps.tokens+now.Sub(ps.last).Seconds()*handshakeRate) < 1)
}

type slotKey struct{}

// connContext is quic.Transport.ConnContext: it takes a slot for the new
// connection or refuses it. The slot is released when the link handshake
// ends (slotOf) or when quic-go gives the connection up, whichever is
// first.
func (t *QUICTransport) connContext(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
	s, err := t.gate.enter(info.RemoteAddr, time.Now())
	if err != nil {
		t.noteHandshakeFailure(info.RemoteAddr, err)
		return nil, err
	}
	context.AfterFunc(ctx, s.release)
	return context.WithValue(ctx, slotKey{}, s), nil
}

// slotOf is the gate slot of an accepted connection (nil for a dialled
// one).
func slotOf(conn *quic.Conn) *slot {
	s, _ := conn.Context().Value(slotKey{}).(*slot)
	return s
}

// HandshakeStats reports the inbound handshake counters.
func (t *QUICTransport) HandshakeStats() HandshakeStats {
	g := t.gate
	g.mu.Lock()
	n := g.total
	g.mu.Unlock()
	return HandshakeStats{
		InProgress: n, RefusedFull: g.refusedFull.Load(), RefusedShare: g.refusedShare.Load(),
		RefusedRate: g.refusedRate.Load(), Retries: g.retries.Load(), Failed: g.failed.Load(),
	}
}

// noteHandshakeFailure logs failed and refused inbound handshakes as one
// WARN per handshakeLogPeriod with the counts so far, never a line per
// attempt.
func (t *QUICTransport) noteHandshakeFailure(remote net.Addr, err error) {
	st := t.HandshakeStats()
	t.floods.Warn("handshakes", "inbound link handshakes failing or refused (counts since start)",
		"last_remote", remote, "last_err", err, "in_progress", st.InProgress, "failed", st.Failed,
		"refused_full", st.RefusedFull, "refused_share", st.RefusedShare, "refused_rate", st.RefusedRate,
		"retries", st.Retries)
}

// handshakeLogPeriod spaces the WARN lines of noteHandshakeFailure.
const handshakeLogPeriod = time.Minute
