package node

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/internal/stack"
	"github.com/circuitmesh/circuitmesh/links"
)

// acceptLoop dispatches every circuit stream the neighbour opens on l until
// the link or the node ends. Streams are bounded by the link's stream limit
// and, while their headers are read, by MaxPendingOpensPerLink and
// MaxPendingOpens: one link cannot hold the slots every other link needs.
// A stream of a link at its own share waits for one of the link's slots,
// up to HeaderTimeout, before it is refused (the link's next streams wait
// behind it); at the node's bound it is refused at once.
func (n *Node) acceptLoop(l links.Link) {
	for {
		s, err := l.AcceptStream(n.ctx)
		if err != nil {
			return
		}
		if ok, why := n.limits.awaitPending(l.Peer(), n.cfg.Limits.HeaderTimeout, n.ctx.Done()); !ok {
			total := n.limits.pendingRefused.Add(1)
			n.limits.floods.Warn(l.Peer(), "refusing circuit opens: too many open headers pending",
				"peer", l.Peer(), "reason", why, "refused_total", total)
			n.refuse(s, circuit.Overloaded, why)
			continue
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			// Reading the header, the handshake and opening the next
			// hop's stream grow a 2 KiB stack twice (see package stack).
			stack.Grow16K()
			n.handleStream(l, s)
		}()
	}
}

// handleStream reads the open header of a stream from neighbour l and
// either delivers the circuit here or relays it.
//
// The stream holds a MaxPendingOpens slot until its header was read and,
// for a sealed circuit to this node, until the first handshake message was
// read too.
func (n *Node) handleStream(l links.Link, s links.Stream) {
	bp := aheadBufs.Get().(*[]byte)
	o, rest, err := n.readOpen(s, *bp)
	pending := true
	opened := func() {
		if pending {
			pending = false
			n.limits.donePending(l.Peer())
		}
	}
	defer opened()
	if err != nil {
		total := n.limits.badOpens.Add(1)
		n.limits.badOpenLog.Debug(l.Peer(), "bad open header", "peer", l.Peer(), "err", err, "refused_total", total)
		n.refuse(s, circuit.Policy, err.Error())
		return
	}
	if !n.up() {
		n.refuse(s, circuit.ShuttingDown, "node is shutting down")
		return
	}
	// The trust rule: see circuit.CheckSource and docs/PROTOCOL.md §3.
	if err := circuit.CheckSource(o, l.Peer(), l.PeerRole()); err != nil {
		// One line per neighbour a minute, with the node's count of such
		// refusals (all neighbours) and, from the second line on, the
		// neighbour's since its previous line (suppressed): a neighbour
		// can open forged streams as fast as it writes headers.
		total := n.limits.forgedRefused.Add(1)
		n.limits.floods.Warn("forged:"+l.Peer(), "refused forged circuit source",
			"peer", l.Peer(), "source", o.Source, "err", err, "node_refused_total", total)
		n.refuse(s, circuit.Policy, err.Error())
		return
	}
	// The link's reclaim of stalled streams resets those of the source
	// holding the most first: a source's flood costs its own circuits.
	// A source the link did not prove counts as claimed along the path
	// the check above tied to this neighbour, until a destination's
	// handshake proves it (reclaimSource); a relayed one against this
	// neighbour too (reclaimEntry, in relay).
	key := reclaimSource(o)
	// A source that had more of its opens refused here than its budget
	// (Limits.RefusedOpensPerSource) has its opens refused at once. The
	// stream is named, at hop 0 too: it carried a whole, valid open, and
	// counting it as a stream ended without an open would close the link
	// of an honest neighbour whose application retries a missing service
	// in a loop (and with it every circuit on the link), while a member
	// gets the same refusals at once on a link kept up by claiming to
	// relay its opens (hop 1).
	links.SetSource(s, key)
	if n.limits.opens.spent(o, key, time.Now()) {
		n.refuseBeyond(s)
		aheadBufs.Put(bp)
		return
	}
	if o.Dest == n.cfg.Name || n.cfg.hooks != nil && n.cfg.hooks.claim != nil && n.cfg.hooks.claim(o.Dest) {
		s = withFirst(s, rest)
		aheadBufs.Put(bp)
		n.deliver(s, o, l.Peer(), key, opened)
		return
	}
	// Routes are loop-free (feasible), and a relay sends no open to a
	// node it crossed even while routes change (relay), so an open that
	// already crossed this node, or came from it, was sent round again by
	// a member to make the relays on the loop carry its bytes once more
	// per lap, up to the hop limit (TestAttackLoopedCircuitRefused).
	if o.Source == n.cfg.Name || slices.Contains(o.Path, n.cfg.Name) {
		n.limits.opens.charge(o, key, time.Now())
		n.refuse(s, circuit.Policy, fmt.Sprintf("circuit loops: %s is already on its path (source %s, path %s)", n.cfg.Name, o.Source, strings.Join(o.Path, ",")))
		aheadBufs.Put(bp)
		return
	}
	// A relay budgets the full first handshake messages it forwards
	// (Limits.RelayFullHandshakesPerLink): their first bytes are read
	// with the header, within its pending slot.
	if rest, err = n.readFirstPrefix(s, o, rest); err != nil {
		total := n.limits.badOpens.Add(1)
		n.limits.badOpenLog.Debug("sealed:"+l.Peer(), "bad sealed open", "peer", l.Peer(), "err", err, "refused_total", total)
		n.limits.opens.charge(o, key, time.Now())
		n.refuse(s, circuit.Policy, err.Error())
		aheadBufs.Put(bp)
		return
	}
	opened()
	// A relay toward a destination routing lost a moment ago waits
	// RouteWait for the route to come back (relay), holding the stream
	// and a goroutine but no pending slot and no circuit place: such
	// waits are bounded by the link and on the node, beyond which the
	// open is refused at once.
	if !n.router.reachable(o.Dest) && n.recentlyKnown(o.Dest) {
		if ok, why := n.limits.tryRouteWait(l.Peer()); !ok {
			total := n.limits.routeWaitRefused.Add(1)
			n.limits.floods.Warn("routewait:"+l.Peer(), "refusing circuit opens: too many wait for a lost route",
				"peer", l.Peer(), "dest", o.Dest, "reason", why, "refused_total", total)
			n.refuse(s, circuit.NoRoute, fmt.Sprintf("%s has no route to %s (%s)", n.cfg.Name, o.Dest, why))
			aheadBufs.Put(bp)
			return
		}
		defer n.limits.doneRouteWait(l.Peer())
	}
	n.relay(s, o, l.Peer(), key, rest, func() { aheadBufs.Put(bp) })
}

// aheadBufs pools the buffers open headers are read into, with what
// arrived with them: a relay opening circuits at a high rate reuses warm
// memory instead of allocating one per open.
var aheadBufs = sync.Pool{New: func() any { b := make([]byte, readAhead); return &b }}

// readAhead is how much is read with an open header at most: a header and
// an IK first message with a little early data.
const readAhead = 2048

// readOpen reads the open header and whatever arrived with it (rest: the
// first bytes of the circuit's payload, see circuit.ReadOpenAhead).
func (n *Node) readOpen(s links.Stream, buf []byte) (*circuit.Open, []byte, error) {
	s.SetReadDeadline(time.Now().Add(n.cfg.Limits.HeaderTimeout))
	o, rest, err := circuit.ReadOpenAhead(s, n.cfg.Limits.MaxHeaderSize, buf)
	s.SetReadDeadline(time.Time{})
	if err != nil {
		return nil, nil, fmt.Errorf("read open header: %w", err)
	}
	return o, rest, nil
}

// withFirst is s with first, bytes already read from it, read again
// first. first is copied: the stream may be kept long after the buffer
// holding it is reused.
func withFirst(s links.Stream, first []byte) links.Stream {
	if len(first) == 0 {
		return s
	}
	return &readFirst{Stream: s, first: append([]byte(nil), first...)}
}

// linkStream is the link's stream under s.
func linkStream(s links.Stream) links.Stream {
	if r, ok := s.(*readFirst); ok {
		return r.Stream
	}
	return s
}

// readFirst is a stream whose first bytes were already read from it.
type readFirst struct {
	links.Stream
	first []byte
}

// OnStopSending is the stream's own, for a relay's splice
// (circuit.Splicer), which ends a direction whose reader stopped.
func (s *readFirst) OnStopSending(f func(error)) (stop func() bool) {
	return onStopSending(s.Stream, f)
}

// OnLinkLost is the stream's own, for the Done of a circuit.Conn over it.
func (s *readFirst) OnLinkLost(f func(error)) (stop func() bool) {
	if ln, ok := s.Stream.(interface {
		OnLinkLost(func(error)) func() bool
	}); ok {
		return ln.OnLinkLost(f)
	}
	return func() bool { return false }
}

// onStopSending is s's OnStopSending, or nothing where s has none.
func onStopSending(s links.Stream, f func(error)) (stop func() bool) {
	if sn, ok := s.(interface {
		OnStopSending(func(error)) func() bool
	}); ok {
		return sn.OnStopSending(f)
	}
	return func() bool { return false }
}

func (s *readFirst) Read(p []byte) (int, error) {
	if len(s.first) == 0 {
		return s.Stream.Read(p)
	}
	n := copy(p, s.first)
	if s.first = s.first[n:]; len(s.first) == 0 {
		s.first = nil
	}
	return n, nil
}

// refuse answers a stream with a refusal produced by this node.
func (n *Node) refuse(s links.Stream, code circuit.Code, reason string) {
	n.metrics.circuitsRefused.WithLabelValues(codeLabel(code)).Inc()
	if err := circuit.Refuse(s, circuit.Result{Code: code, Node: n.cfg.Name, Reason: reason}); err != nil {
		s.Reset(circuit.CloseCancelled)
	}
}

// deliver hands a circuit addressed to this node to its service. It calls
// opened once the open (header and first handshake message) was read.
// key names the open's source as reclaimSource does; the refusals it
// gives count against it (chargedRefusal).
func (n *Node) deliver(s links.Stream, o *circuit.Open, from string, key links.SourceKey, opened func()) {
	_, span := n.startHop(extractTrace(o), spanAccept, trace.SpanKindServer, o, int(o.Hop)+1, "")
	if l := n.link(from); l != nil {
		setLinkAttrs(span, l)
	} else {
		span.SetAttributes(attrPeer.String(from))
	}
	// refuse answers with a refusal this node produced, which makes its
	// span the failed one; own says an overloaded refusal was at a bound
	// of the source's own (chargedRefusal).
	refuseAt := func(code circuit.Code, reason string, own bool) {
		if chargedRefusal(code, own) {
			n.limits.opens.charge(o, key, time.Now())
		}
		n.refuse(s, code, reason)
		refusedSpan(span, n.cfg.Name, code, reason)
	}
	refuse := func(code circuit.Code, reason string) { refuseAt(code, reason, false) }
	// A denied claim is refused at once, without the rule's text unless
	// the link proved the source (claimDenied). A sealed one to a service
	// here is decided again once the handshake proved the source, whose
	// refusal may then name the rule.
	if d, ok := n.precheckDial(o); !ok && (o.Hop == 0 || o.Flags&circuit.FlagSealed == 0 || n.service(o.Service) == nil) {
		opened()
		refuse(circuit.Policy, claimDenied(o, d))
		return
	}
	resume := o.Flags&circuit.FlagResume != 0
	if o.Flags&(circuit.FlagResume|circuit.FlagResumable) != 0 && o.Flags&circuit.FlagSealed == 0 {
		opened()
		refuse(circuit.Policy, "a resumable circuit must be sealed")
		return
	}
	lis := n.service(o.Service)
	if lis == nil && !resume { // a circuit already accepted outlives its listener
		opened()
		refuse(circuit.NoService, fmt.Sprintf("no service %q on %s", o.Service, n.cfg.Name))
		return
	}
	// The source is authenticated by the end-to-end handshake: in the
	// one-message handshake now, in the full one once Accept read its
	// identity (until then the limits count it as claimed).
	var resp *seal.Responder
	if o.Flags&circuit.FlagSealed != 0 {
		r, code, err := n.respond(s, o, from)
		opened()
		if err != nil {
			// An overloaded refusal is the source's own when its budget
			// of one-message handshakes is spent; the others are at
			// budgets of the link it came on, shared.
			own := false
			if code == circuit.Overloaded {
				own, _ = n.limits.oneMessageSpent(o.Source, time.Now())
			}
			refuseAt(code, fmt.Sprintf("end-to-end handshake with %s failed: %v", n.cfg.Name, err), own)
			return
		}
		resp = r
	} else if n.cfg.E2E != E2EOff {
		refuse(circuit.Policy, fmt.Sprintf("%s requires end-to-end security (the open is not sealed)", n.cfg.Name))
		return
	}
	opened()
	full := resp != nil && resp.Full()
	subj, known := n.dialSource(o, resp)
	if d := dialUnder(n.Policy(), subj, known, o.Service); !d.Allowed && !full {
		refuse(circuit.Policy, d.Reason) // the full handshake authenticates the source later: policeDial
		return
	}
	src := limitSource{name: o.Source} // authenticated by the handshake
	switch {
	case resp == nil:
		src = relaySource(o) // unsealed: as claimed along its path
	case full && o.Hop > 0:
		// Until its third message proves the source, a full handshake
		// relayed by a neighbour counts in the node's total only: any
		// share of the claimed source (or of the neighbour) would let
		// the neighbour's forged opens use up the real source's.
		src = limitSource{}
	}
	t, err := n.limits.admit(src, from)
	// A backlog already full for the circuit refuses it cleanly here; its
	// place is taken only once the handshake proved its source (serve),
	// so that a handshake never finished holds none.
	// The source its place counts against, a hash worked out once and
	// only for a service that queues (the node's own answer none; a
	// resume takes no place, and its service may have no listener).
	var bsrc links.SourceKey
	if !resume && lis.handle == nil {
		bsrc = backlogSource(o, resp)
	}
	if err == nil && !resume {
		if err = lis.hasRoom(bsrc); err != nil {
			t.release()
		}
	}
	if err != nil {
		n.limits.noteOverloaded(err.Error())
		refuseAt(circuit.Overloaded, err.Error(), errors.Is(err, errSourceFull))
		return
	}
	if o.Flags&circuit.FlagRecordPath != 0 {
		o.Path = append(o.Path, n.cfg.Name) // the path ends at the destination
	}
	// Count the circuit before the caller learns it was accepted, so that a
	// Close racing with the accept waits for it.
	entry := n.circuits.add(false, func() { s.Reset(circuit.CloseShuttingDown) })
	local := circuit.Addr{Node: n.cfg.Name, Service: o.Service}
	var c *circuit.Conn
	if resp != nil {
		// A full handshake's third message has HeaderTimeout of its own,
		// counted from the reply: the source's work and the path's delay
		// are timed, not this node's before it replies.
		c, err = circuit.AcceptSecureWithin(s, o, local, resp, n.cfg.Limits.HeaderTimeout)
	} else {
		c, err = circuit.Accept(s, o, local)
	}
	if err == nil && full && src.name == "" {
		// Proven now: count the source's own circuit instead of the claim.
		t.release()
		if t, err = n.limits.admit(limitSource{name: o.Source}, from); err != nil {
			c.Reset(circuit.CloseInternal)
		}
	}
	if err != nil {
		n.circuits.remove(entry)
		t.release()
		s.Reset(circuit.CloseCancelled)
		endSpan(span, "error", 0, 0, err)
		return
	}
	spanResult(span, codeLabel(circuit.Accepted), n.cfg.Name)
	if resp != nil {
		n.keyBook.store(resp.PeerRecord())
		// The handshake proved the source: the reclaim of stalled
		// streams counts the stream against it, not against the claim
		// along its path, which any relay on that path may make too.
		links.SetSource(linkStream(s), links.ProvenSource(o.Source))
	}
	tc := n.track(c, "accept", span, t, entry)
	if !n.policeDial(tc, o, resp) {
		return
	}
	if resume {
		n.resumePath(tc, o)
		return
	}
	var conn net.Conn = tc
	if o.Flags&circuit.FlagResumable != 0 {
		conn = n.resumableDest(tc, o)
	}
	// The place in the backlog is taken now, the source proven: the
	// circuit was accepted, so a backlog filled meanwhile resets it.
	if err := lis.serve(conn, bsrc); err != nil && !errors.Is(err, errListenerClosed) {
		n.limits.noteOverloaded(err.Error())
	}
}
