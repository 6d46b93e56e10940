package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/links"
)

// relay forwards a circuit from neighbour `from` toward o.Dest: it checks
// the hop limit and the limits, opens a stream on the best next hop (or
// the next feasible alternate when that fails), forwards the header with
// rest (the payload that arrived with it) in one write and splices both
// directions. A refusal from further along travels back to the caller
// inside the splice, untouched.
//
// key names the circuit's source for the links' reclaim (reclaimSource).
func (n *Node) relay(s links.Stream, o *circuit.Open, from string, key links.SourceKey, rest []byte, releaseRest func()) {
	released := false
	release := func() {
		if !released {
			released = true
			releaseRest()
		}
	}
	defer release()
	// Counted in the links' reclaim against the neighbour too (dispatch
	// named the source).
	reclaimIn := reclaimEntry(o, key)
	links.SetNeighbour(s, from, reclaimIn)
	hop := int(o.Hop) + 1 // this relay's place on the path, stamped into resets it produces
	// The span is a child of the previous hop's span (the header carries
	// its context), and the header sent on carries this one's.
	ctx, span := n.startHop(extractTrace(o), spanForward, trace.SpanKindInternal, o, hop, from)
	// refuse answers with a refusal this node produced; own says an
	// overloaded one was at a bound of the source's own (chargedRefusal).
	refuseAt := func(code circuit.Code, reason string, own bool) {
		if chargedRefusal(code, own) {
			n.limits.opens.charge(o, key, time.Now())
		}
		n.refuse(s, code, reason)
		refusedSpan(span, n.cfg.Name, code, reason)
	}
	refuse := func(code circuit.Code, reason string) { refuseAt(code, reason, false) }
	switch {
	case n.cfg.Leaf:
		refuse(circuit.Policy, n.leafRefusal())
		return
	case o.HopLimit == 0:
		refuse(circuit.HopLimit, fmt.Sprintf("hop limit reached at %s after %d relays", n.cfg.Name, o.Hop))
		return
	}
	police, d := n.relayDecision(o)
	if !d.Allowed {
		refuse(circuit.Policy, d.Reason)
		return
	}
	// A next hop the circuit already crossed (the neighbour it came
	// from, its source, a relay on its path) would refuse it as looping
	// (dispatch). Routes are loop-free at every instant, but the circuit
	// crosses them at different instants: while they change, a node that
	// sent it this way may route through this node by the time it gets
	// here. Such a next hop is passed over (openNext), and with none
	// other the refusal is no route, which the source's Dial retries on
	// another next hop (TestRelayPassesOverNextHopsTheCircuitCrossed).
	onPath := func(h string) bool { return h == from || h == o.Source || slices.Contains(o.Path, h) }
	hops := n.router.nextHops(o.Dest)
	if len(hops) == 0 && n.recentlyKnown(o.Dest) {
		// As in Dial: routing is replacing a route it just dropped (an
		// unfeasible update awaiting a new seqno); wait for it briefly.
		wctx, cancel := context.WithTimeout(ctx, n.cfg.RouteWait)
		hops = n.awaitNewHop(wctx, o.Dest, onPath)
		cancel()
	}
	if len(hops) == 0 {
		refuse(circuit.NoRoute, fmt.Sprintf("%s has no route to %s", n.cfg.Name, o.Dest))
		return
	}
	if !slices.ContainsFunc(hops, func(h string) bool { return !onPath(h) }) {
		refuse(circuit.NoRoute, fmt.Sprintf("%s has no route to %s except back through nodes the circuit crossed", n.cfg.Name, o.Dest))
		return
	}
	fwd, err := o.Forward(n.cfg.Name)
	if err != nil { // hop 255 or a full path: no relay may add its name
		refuse(circuit.HopLimit, err.Error())
		return
	}
	// The last relay's budgets below are split by the open's entries
	// into the neighbour it came from (relayEntries, built only for the
	// opens they count).
	if fullFirst(o, rest) && n.link(o.Dest) != nil {
		// The last relay: the destination charges this open to its
		// budget for this node's link.
		if ok, why := n.limits.tryRelayFull(from, o.Dest, relayEntries(o), time.Now()); !ok {
			n.limits.noteOverloaded(why)
			refuse(circuit.Overloaded, fmt.Sprintf("%v at %s: %s", errOverloaded, n.cfg.Name, why))
			return
		}
	}
	// The last relay: the destination charges a one-message first message
	// that fails there (a stale key, a replay) to its budget for this
	// node's link. The token is held until the destination answers
	// (watchRetry) and given back unless it answers retry or overloaded.
	var ikHeld relayHeld
	if oneMessageFirst(o, rest) && n.link(o.Dest) != nil {
		held, why := n.limits.tryRelayOneMessage(from, o.Dest, relayEntries(o), time.Now())
		if held == nil {
			n.limits.noteOverloaded(why)
			refuse(circuit.Overloaded, fmt.Sprintf("%v at %s: %s", errOverloaded, n.cfg.Name, why))
			return
		}
		ikHeld = held
		defer func() {
			if ikHeld != nil { // not forwarded
				n.limits.giveRelayOneMessage(ikHeld, time.Now())
			}
		}()
	}
	injectTrace(ctx, fwd)
	hdr, err := fwd.AppendTo(make([]byte, 0, 256+len(rest)))
	if err != nil {
		refuse(circuit.Policy, fmt.Sprintf("header grew too large at %s: %v", n.cfg.Name, err))
		return
	}
	hook := n.cfg.hooks != nil && n.cfg.hooks.relay != nil
	if hook {
		// Tests that watch a relay's splice see every byte after the
		// header: rest is read through it.
		s = withFirst(s, rest)
		rest = nil
	}
	hdr = append(hdr, rest...)
	ahead := int64(len(rest))
	rest = nil
	release()
	out, via, t, err := n.openNext(ctx, hops, from, onPath, relaySource(o), hdr)
	if err != nil {
		// No next hop took the circuit: the links to them failed or
		// were full, which says nothing of the source, unless it was at
		// its own circuit limit.
		code := circuit.NoRoute
		if errors.Is(err, errOverloaded) {
			code = circuit.Overloaded
			n.limits.noteOverloaded(err.Error())
		}
		if errors.Is(err, errSourceFull) {
			refuseAt(code, err.Error(), true)
		} else {
			n.refuse(s, code, err.Error())
			refusedSpan(span, n.cfg.Name, code, err.Error())
		}
		return
	}
	// Its replies, too, count as the incoming stream does.
	links.SetSource(out, key)
	links.SetNeighbour(out, from, reclaimIn)
	if held := ikHeld; held != nil {
		ikHeld = nil
		out = watchRetry(out, func(failed bool) {
			if !failed {
				n.limits.giveRelayOneMessage(held, time.Now())
			}
		})
	}
	openSent(span, via)
	if l := n.link(via); l != nil {
		setLinkAttrs(span, l)
	}
	n.metrics.relay.opened.Inc()
	n.metrics.relay.active.Inc()
	if hook {
		// Before resetBoth is registered below: it resets the streams
		// the splice runs on, from the goroutine that closes the node.
		s, out = n.cfg.hooks.relay(s, out)
	}
	// produced is the reset this relay itself gave the circuit (shutdown,
	// policy), if any: its span reports it whatever error the splice saw
	// first as the streams went down.
	var produced atomic.Pointer[links.StreamResetError]
	resetBoth := func(reason uint64) {
		code := uint64(circuit.CloseCode(reason).At(hop))
		produced.CompareAndSwap(nil, &links.StreamResetError{Code: code})
		s.Reset(code)
		out.Reset(code)
	}
	entry := n.circuits.add(true, func() { resetBoth(circuit.CloseShuttingDown) })
	police.deny = func() { resetBoth(circuit.CloseDenied) }
	if d := n.authz.watch(police); !d.Allowed { // the policy changed since the check above
		police.deny()
	}
	counters := n.metrics.relayBytes.start()
	counters.Up.Add(ahead) // forwarded with the header
	// The splice runs in two goroutines of its own and this one ends (see
	// circuit.StartSpliceBounded); the node waits for them on Close.
	n.wg.Add(1)
	circuit.StartSpliceBounded(s, out, n.cfg.Limits.RelayBuffer, circuit.SpliceBounds{
		Stall:       max(n.cfg.Limits.RelayStall, 0),
		HalfClosed:  max(n.cfg.Limits.RelayHalfClosed, 0),
		Hop:         hop,
		Counters:    counters,
		OnHalfClose: func(up bool) { halfClose(span, up) },
	}, func(st circuit.SpliceStats, err error) {
		defer n.wg.Done()
		if errors.Is(err, circuit.ErrStalled) {
			// One line per neighbour a minute, with the node's count: a
			// member can leave as many circuits stuck as it opens.
			total := n.limits.boundEnded.Add(1)
			n.limits.floods.Warn("bound:"+from, "relayed circuit ended by a bound",
				"peer", from, "source", o.Source, "dest", o.Dest, "err", err, "node_ended_total", total)
		}
		n.authz.forget(police)
		n.circuits.remove(entry)
		t.release()
		n.metrics.relay.active.Dec()
		n.metrics.relayBytes.end(counters)
		if p := produced.Load(); p != nil {
			err = p
		} else if forwardedReset(err) {
			// Another hop produced the reset: its span says so, not this one.
			span.SetAttributes(attrCloseErr.String(err.Error()))
			err = nil
		}
		endSpan(span, "relayed", st.Up, st.Down, err)
	})
}

var errOverloaded = errors.New("overloaded")

// firstPrefix is how much of a sealed open's payload shows its first
// handshake message's mode: the message's 2-byte length and its first
// byte (docs/PROTOCOL.md §3.8).
const firstPrefix = 3

// readFirstPrefix makes rest, what arrived with the header of o, hold the
// whole first handshake message (its 2-byte length and the message) when
// o is sealed, reading what is missing from s within
// Limits.HeaderTimeout, within the stream's slot of the incoming link's
// share of open headers being read. So a relay sees the mode of the
// handshake it forwards however the source split its writes, and forwards
// the open only once the destination can read the message at once: a
// source that writes it slowly holds slots of its own link here, not of
// this relay's link at the destination, where the destination reads the
// message within such a slot
// (TestAttackTrickledHandshakesThroughRelayHoldNoSlots). The bytes read
// are appended to rest.
func (n *Node) readFirstPrefix(s links.Stream, o *circuit.Open, rest []byte) ([]byte, error) {
	if o.Flags&circuit.FlagSealed == 0 {
		return rest, nil
	}
	want := firstPrefix
	if len(rest) >= 2 {
		want = max(want, 2+int(binary.BigEndian.Uint16(rest)))
	}
	if len(rest) >= want {
		return rest, nil
	}
	s.SetReadDeadline(time.Now().Add(n.cfg.Limits.HeaderTimeout))
	defer s.SetReadDeadline(time.Time{})
	for len(rest) < want {
		// Grow with what arrives, not by the length the message
		// declares: 3 bytes do not make the relay hold 64 KiB.
		if len(rest) == cap(rest) {
			rest = slices.Grow(rest, min(want-len(rest), max(len(rest), 512)))
		}
		k, err := s.Read(rest[len(rest):min(want, cap(rest))])
		rest = rest[:len(rest)+k]
		if len(rest) >= 2 {
			want = max(want, 2+int(binary.BigEndian.Uint16(rest)))
		}
		if err != nil && len(rest) < want {
			return nil, fmt.Errorf("read the first handshake message of a sealed open: %w", err)
		}
	}
	return rest, nil
}

// fullFirst reports whether o is sealed and rest (its payload's first
// bytes, see readFirstPrefix) starts a full (XX) first handshake message:
// one the destination charges to its budget of full handshakes for the
// link it arrives on (Limits.FullHandshakesPerLink), whatever source it
// claims. (A one-message first message that fails is charged to a budget
// of its own there: Limits.FullHandshakesPerLink too, by link.)
func fullFirst(o *circuit.Open, rest []byte) bool {
	return o.Flags&circuit.FlagSealed != 0 && len(rest) >= firstPrefix && seal.FullFirst(rest[2:firstPrefix])
}

// oneMessageFirst reports whether o is sealed and rest starts a
// one-message (IK) first handshake message: one that, when it fails at
// the destination, is charged to the destination's budget of failed
// one-message handshakes for the link it arrives on, whatever source it
// claims.
func oneMessageFirst(o *circuit.Open, rest []byte) bool {
	return o.Flags&circuit.FlagSealed != 0 && len(rest) >= firstPrefix && seal.OneMessageFirst(rest[2:firstPrefix])
}

// relaySource is whom a relayed circuit counts against in the per-source
// limit: its source when the neighbour it came from is the source (hop 0,
// proven by circuit.CheckSource), else the source as claimed along the
// relays its path names (claimRelays), which ends with that neighbour. A
// router can claim any source for the circuits it says it relays, and
// any names for the relays before its own; counted by path and by share
// (limitSource), a forger's claims never use up the source's own
// allowance here, however many hops away the forger sits
// (TestAttackForgedSourceExhaustsRelayShare,
// TestAttackTwoHopForgedSourceExhaustsRelayShare).
func relaySource(o *circuit.Open) limitSource {
	if o.Hop == 0 {
		return limitSource{name: o.Source}
	}
	return limitSource{name: o.Source, claimed: true, relays: claimRelays(o)}
}

// claimRelays is the relays o's path names, oldest first: the path
// without the source that FlagRecordPath puts first (circuit.CheckPath
// checked it is the source), so that a claim has one key whether or not
// the path is recorded from the source.
func claimRelays(o *circuit.Open) []string {
	if o.Flags&circuit.FlagRecordPath != 0 && len(o.Path) > 0 {
		return o.Path[1:]
	}
	return o.Path
}

// relayEntries is the entries of the open o at the relay that checks its
// relay budgets, nearest first, joined by "\x00": the node the neighbour
// o came from names before itself (the neighbour it received o from,
// which it proved if it is honest), the node that one names before
// itself, and so on, relayShareDepth names at most, ending with the
// source when the path goes back that far (the first relay proved it
// at hop 0); the source alone when that neighbour is the first relay or
// the source itself. Every source behind the neighbour shares the
// neighbour's link's budget; split by entry, one of the neighbour's own
// neighbours spends at most its share while another entry is waiting,
// and split again by the entries behind it, a node two or three relays
// back spends at most its part of its entry's share. A relay that lies
// names what it likes behind itself, but only within its own share.
func relayEntries(o *circuit.Open) string {
	relays := claimRelays(o)
	if o.Hop == 0 || len(relays) < 2 {
		return o.Source
	}
	var b strings.Builder
	for i := len(relays) - 2; i >= 0 && i > len(relays)-2-relayShareDepth; i-- {
		if b.Len() > 0 {
			b.WriteByte(0)
		}
		b.WriteString(relays[i])
	}
	if len(relays)-1 < relayShareDepth {
		b.WriteByte(0)
		b.WriteString(o.Source)
	}
	return b.String()
}

// reclaimSource names whom a circuit's streams count against in the
// links' reclaim of stalled streams (links.SetSource): its source when
// the neighbour it came from is the source (hop 0, proven by
// circuit.CheckSource), else its source as claimed along its path (the
// key of relaySource's path). Every relay appends its name to the path
// and CheckSource checks that it ends with the neighbour, so the path
// names, back to the first relay that lied, the relays the open really
// crossed: a router forging a source for opens it says it relays gets a
// key with its own name in the path, never the key of the real source's
// circuits arriving along a path without it, however many honest relays
// it sits behind (TestAttackTwoHopForgedSourceStallFloodSparesPausedReader).
// A relay the real source's circuits cross can still give its forgeries
// their key (docs/SECURITY.md).
func reclaimSource(o *circuit.Open) links.SourceKey {
	if o.Hop == 0 {
		return links.ProvenSource(o.Source)
	}
	return links.ClaimedSource(o.Source, claimRelays(o))
}

// reclaimEntry is the entry a relayed circuit's streams count against in
// the links' reclaim, behind the neighbour it came from
// (links.SetNeighbour): entryKey, or its source (key, reclaimSource)
// below hop 2. A neighbour can make up a source or a path for every
// open, so all of its circuits together may hold no more of a link's
// window than one source's, the link it arrived on proving it
// (TestAttackTrickleDownloadsWithMadeUpPathsPinRelayLinkWindow). A
// destination's streams are counted by source alone: its handshake
// proves the source, and all the circuits of a node behind one router
// (a leaf's) would otherwise share half of that link's window.
func reclaimEntry(o *circuit.Open, key links.SourceKey) links.SourceKey {
	if entry := entryKey(o); entry != 0 {
		return entry
	}
	return key
}

// openNext opens a stream toward the first usable next hop, skipping
// those onPath (the neighbour the circuit came from, from, and the nodes
// it crossed; one of hops is not), writes the header and admits the
// circuit against the limits. It returns the stream, the neighbour it
// goes through and the circuit's limit ticket. A next hop whose link is
// at its limit, or at its reserve for this circuit, is passed over for
// the next; so is one whose link's peer grants no stream at once
// (links.StreamTrier), waited on only when no next hop opened at once.
// A limit no next hop changes (the node's, the source's, the incoming
// link's) refuses the circuit at once.
func (n *Node) openNext(ctx context.Context, hops []string, from string, onPath func(string) bool, src limitSource, hdr []byte) (links.Stream, string, *ticket, error) {
	var errs []error
	full := false
	var waiting []string // next hops that granted no stream at once
	// open admits the circuit through nh and opens it there; wait says
	// whether to wait for a stream. done is false when the next hop
	// was passed over: the reason appended to errs, or nh to waiting
	// when its link granted no stream at once.
	open := func(nh string, wait bool) (out links.Stream, t *ticket, done bool, err error) {
		l := n.link(nh)
		if l == nil {
			errs = append(errs, fmt.Errorf("no link to next hop %s", nh))
			return nil, nil, false, nil
		}
		t, err = n.limits.admit(src, from, from, nh)
		if errors.Is(err, errNextHopFull) {
			full = true
			errs = append(errs, err)
			return nil, nil, false, nil
		}
		if err != nil {
			return nil, nil, true, fmt.Errorf("%w at %s: %w", errOverloaded, n.cfg.Name, err)
		}
		out, err = n.openOn(ctx, l, hdr, wait)
		if err != nil {
			t.release()
			if errors.Is(err, links.ErrNoStreamCredit) {
				waiting = append(waiting, nh)
			} else {
				errs = append(errs, err)
			}
			return nil, nil, false, nil
		}
		return out, t, true, nil
	}
	for _, nh := range hops {
		if onPath(nh) {
			continue
		}
		if out, t, done, err := open(nh, false); done {
			return out, nh, t, err
		}
	}
	for _, nh := range waiting {
		if out, t, done, err := open(nh, true); done {
			return out, nh, t, err
		}
	}
	if full {
		return nil, "", nil, fmt.Errorf("%w at %s: %v", errOverloaded, n.cfg.Name, errors.Join(errs...))
	}
	return nil, "", nil, fmt.Errorf("%s could not open a stream on any next hop: %w", n.cfg.Name, errors.Join(errs...))
}

// openOn opens a stream on l (openStream: its error names the stream
// once, where a refusal said "open stream to c: open stream to c") and
// writes hdr on it. Unless wait, a link whose peer grants no stream now
// fails it at once with links.ErrNoStreamCredit (links.StreamTrier).
func (n *Node) openOn(ctx context.Context, l links.Link, hdr []byte, wait bool) (links.Stream, error) {
	var out links.Stream
	var err error
	if t, ok := l.(links.StreamTrier); ok && !wait {
		out, err = t.TryOpenStream()
	} else {
		ctx, cancel := context.WithTimeout(ctx, n.cfg.DialTimeout)
		defer cancel()
		out, err = openStream(ctx, l)
	}
	if err != nil {
		return nil, err
	}
	if _, err := out.Write(hdr); err != nil {
		out.Reset(circuit.CloseCancelled)
		return nil, fmt.Errorf("write open header to %s: %w", l.Peer(), err)
	}
	return out, nil
}
