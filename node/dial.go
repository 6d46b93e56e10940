package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// Dial opens a circuit to service on peer and returns once the destination
// accepted (one end-to-end round trip over warm links). A refusal is a
// *circuit.RefusedError naming the node that produced it; test it with
// errors.Is against circuit.ErrNoRoute, ErrNoService, ErrHopLimit,
// ErrRefusedByPolicy, ErrOverloaded, ErrShuttingDown or ErrLinkLost. A
// relay's refusal for want of a route onward (its route changed while the
// open travelled, as while a mesh converges) makes Dial try the other next
// hops routing offers at once; the first such refusal is returned when
// none is left. A next hop whose link ends under the dial, lost or
// closed by this node (to make room for another link, or as a
// duplicate), makes Dial try the other next hops, then wait for routing
// to offer one while ctx allows. An open through a next hop that passed
// nothing back within Limits.HeaderTimeout while another next hop is left
// keeps running while the next hop is tried: the first of them to carry
// the circuit is the Dial's, and the others are reset. A next hop
// through which a circuit to peer made no progress, or a dial got no
// answer, while this node kept its link to it is tried last for 5
// minutes (docs/SECURITY.md, A compromised relay).
// The Conn is a net.Conn with half-close, the recorded path
// and whether it is sealed end to end. Dial fails with ErrNotStarted
// before Start has succeeded, and is refused by this node
// (ErrShuttingDown) once Close has begun, a Dial in flight then
// included. It fails with an error matching ctx's error when ctx has
// ended, early or not; one that ended while the dial waited for a route
// also matches the refusal it would have returned (ErrNoRoute, or
// ErrLinkLost once its next hops failed).
func (n *Node) Dial(ctx context.Context, peer, service string) (Conn, error) {
	return n.DialWith(ctx, peer, service, DialOptions{})
}

// DialWith is Dial with options.
func (n *Node) DialWith(ctx context.Context, peer, service string, opt DialOptions) (Conn, error) {
	start := time.Now()
	c, err := n.dial(ctx, peer, service, opt)
	if err == nil && n.resumeOn(peer, opt) {
		c, err = n.resumableSource(c.(*trackedConn), peer, service, opt)
	}
	if err != nil {
		err = n.dialFailed(ctx, peer, service, err)
	}
	if (!opt.Early || err != nil) && !errors.Is(err, ErrInvalidService) && !errors.Is(err, ErrNotStarted) {
		n.metrics.observeOpen(start, err) // an early circuit's result comes later, with its first bytes
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s/%s: %w", peer, service, err)
	}
	return c, nil
}

// dialFailed is the error of a Dial that failed with err. Once Close has
// begun it is the refusal of a node shutting down, as for a Dial after
// Close: a dial in flight failed because the node closed its links, or
// stopped waiting for a route. Else, when ctx has ended, it matches ctx's
// error too: the dial stopped waiting because of it (for a route, or for
// the next hops' links) and failed with what it was waiting for.
func (n *Node) dialFailed(ctx context.Context, peer, service string, err error) error {
	switch cerr := ctx.Err(); {
	case errors.Is(err, ErrInvalidService) || errors.Is(err, ErrNotStarted):
		return err // refused before it began
	case n.notRunning() == errShutDown && !errors.Is(err, circuit.ErrShuttingDown):
		return n.shuttingDown(peer, service)
	case cerr != nil && !errors.Is(err, cerr):
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}

// shuttingDown is the refusal of a dial once Close has begun, the one
// the node's neighbours would give.
func (n *Node) shuttingDown(peer, service string) error {
	return &circuit.RefusedError{Code: circuit.ShuttingDown, Node: n.cfg.Name, Dest: peer, Service: service, Reason: "node is closing"}
}

func (n *Node) dial(ctx context.Context, peer, service string, opt DialOptions) (Conn, error) {
	if !n.running() {
		if err := n.notRunning(); err == ErrNotStarted {
			return nil, err
		}
		// Closing or closed, started or not: the refusal of a node
		// shutting down, as its neighbours would give.
		return nil, n.shuttingDown(peer, service)
	}
	if err := circuit.ValidateService(service); err != nil {
		return nil, err
	}
	// An early circuit is not sent before its first Write: without this
	// one given an ended ctx was returned as if opened.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.DialTimeout)
		defer cancel()
	}
	o := &circuit.Open{Dest: peer, Source: n.cfg.Name, Service: service, HopLimit: opt.HopLimit}
	if o.HopLimit == 0 {
		o.HopLimit = circuit.DefaultHopLimit
	}
	if n.resumeOn(peer, opt) || opt.resume {
		o.Flags |= circuit.FlagResumable
	}
	if opt.resume {
		o.Flags |= circuit.FlagResume
	}
	if opt.RecordPath {
		o.Flags |= circuit.FlagRecordPath // the dial puts the source first in the path
	}
	ctx, span := n.startHop(ctx, spanDial, trace.SpanKindClient, o, 0, "")
	injectTrace(ctx, o)
	refused := func(code circuit.Code, reason string) error {
		err := &circuit.RefusedError{Code: code, Node: n.cfg.Name, Dest: peer, Service: service, Reason: reason}
		spanResult(span, codeLabel(code), n.cfg.Name)
		endSpan(span, codeLabel(code), 0, 0, err)
		return err
	}

	if peer == n.cfg.Name {
		return n.dialLocal(ctx, o, opt, span)
	}
	failed := failedHops{}
	hops := n.router.nextHops(peer)
	if len(hops) == 0 && n.link(peer) != nil {
		// A neighbour routing has no use for (it is draining): ask it
		// directly, so that its own answer (shutting down) comes back.
		hops = []string{peer}
	}
	if len(hops) == 0 && n.recentlyKnown(peer) {
		// Routing is replacing a lost route (a seqno request is in flight):
		// give it a moment rather than failing a dial that would work.
		wctx, cancel := context.WithTimeout(ctx, n.cfg.RouteWait)
		hops = n.awaitNewHopUntil(wctx, peer, failed.skip(n), n.draining)
		cancel()
	}
	if len(hops) == 0 {
		return nil, refused(circuit.NoRoute, fmt.Sprintf("%s has no route to %s", n.cfg.Name, peer))
	}
	var errs []error
	var authErr error
	// noRoute is the first refusal of a relay that had no route onward.
	var noRoute error
	fallback := map[string]bool{}
	race := newHopRace()
	defer race.stop()
	// A next hop passed over for no answer in time is a suspect (tried
	// last by the next dials) unless its open carries the circuit after
	// all: it was slow, not silent, and the others did worse.
	race.carried = func(nh string) { n.suspects.forget(peer, nh) }
	// judge takes the failure of an open through a next hop, the one
	// just made or one passed over (hopRace), and returns the error the
	// dial ends with, or nil when another next hop may still carry it.
	judge := func(f hopFail) error {
		nh, l, err := f.nh, f.l, f.err
		// The path through nh, its link up, passed nothing back: the
		// answer did not come within the header timeout the relays
		// and the destination answer in before the dial's deadline,
		// or the stream ended without it (a relay that drops what it
		// carries; an honest one sends the answer or a reset).
		silent := l != nil && n.link(nh) == l && (errors.Is(ctx.Err(), context.DeadlineExceeded) && time.Since(f.began) >= n.cfg.Limits.HeaderTimeout ||
			ctx.Err() == nil && errors.Is(err, circuit.ErrMalformedHeader))
		if silent {
			n.suspects.add(peer, nh, time.Now())
		}
		if fallback[nh] && ctx.Err() == nil && !errors.Is(err, circuit.ErrAuth) {
			// A route routing did not choose may lead nowhere: the
			// next one is tried whatever the answer. Tried again only
			// once routing chooses it.
			failed[nh] = failedHop{link: l, fallback: true}
			errs = append(errs, err)
			return nil
		}
		var re *circuit.RefusedError
		if errors.As(err, &re) && re.Code == circuit.NoRoute && re.Node != n.cfg.Name && ctx.Err() == nil {
			// The relay's route onward went away while the open
			// travelled (routes changing, as while a mesh
			// converges): another next hop may still reach.
			if noRoute == nil {
				noRoute = err
			}
			failed[nh] = failedHop{link: l, always: true}
			errs = append(errs, err)
			return nil
		}
		impostor := errors.Is(err, circuit.ErrAuth)
		if !impostor && (errors.As(err, &re) || ctx.Err() != nil || !n.linkLost(err)) {
			return err
		}
		if impostor {
			authErr = err
			// One line per next hop a minute, with the node's count:
			// a router attracting the route answers every circuit.
			total := n.limits.impostors.Add(1)
			n.limits.floods.Warn("impostor:"+nh, "circuit through next hop reached a node that could not prove it is the destination; trying another next hop",
				"dest", peer, "next_hop", nh, "err", err, "node_impostor_total", total)
		}
		// The link died (or this node closed it) before the destination
		// answered and nothing but the header was sent, or whoever
		// answered was not the destination: another next hop may
		// still work, and so may a link that replaces l to the same
		// next hop.
		failed[nh] = failedHop{link: l, always: impostor}
		errs = append(errs, err)
		return nil
	}
	// judgePassedOver judges the failures of the opens passed over that
	// ended since: the first that ends the dial, or nil.
	judgePassedOver := func() error {
		for _, f := range race.takeFails() {
			if err := judge(f); err != nil {
				return err
			}
		}
		return nil
	}
	// end fails the dial with err once the opens passed over and still
	// running had their chance to carry the circuit (unless the
	// destination itself refused it).
	end := func(err error) (Conn, error) {
		var re *circuit.RefusedError
		if !errors.As(err, &re) || re.Node != peer {
			if c := race.await(ctx); c != nil {
				return c, nil
			}
		}
		endSpan(span, resultLabel(err), 0, 0, err)
		return nil, err
	}
	avoid := n.suspects.order(peer, time.Now(), opt.avoid)
	for {
		hops = n.avoidLast(peer, hops, avoid, fallback)
		for i, nh := range hops {
			if failed.skipped(n, nh, fallback) {
				continue
			}
			if opt.tried != nil {
				opt.tried(nh)
			}
			l := n.link(nh)
			began := time.Now()
			bound := n.answerBound(peer, nh, hops[i+1:], failed, fallback)
			hopOpt := opt
			hopOpt.raced = race.running > 0
			c, err, passed := race.run(ctx, nh, l, bound, func(ctx context.Context, opening, full func()) (Conn, error) {
				hopOpt.opening, hopOpt.full = opening, full
				return n.dialVia(ctx, nh, l, o, hopOpt, span)
			})
			if c != nil {
				return c, nil
			}
			if passed != notPassed {
				// No answer within the bound, or no stream on nh's
				// link at once: the open keeps running while the next
				// hops left are tried (judged when it ends). A next hop
				// that did not answer in time is tried last by the
				// dials after this one unless the open carries the
				// circuit (race.carried); one whose link was full is
				// not: the next dial finds out at once whether the
				// link has room again, and goes back to the route
				// routing prefers as soon as it has
				// (TestDialPassesOverALinkWithNoStreamLeft).
				if passed == passedSlow {
					n.suspects.add(peer, nh, time.Now())
				}
				failed[nh] = failedHop{link: l, always: true}
			} else if err := judge(hopFail{nh: nh, l: l, began: began, err: err}); err != nil {
				return end(err)
			}
			if err := judgePassedOver(); err != nil {
				return end(err)
			}
		}
		if authErr != nil {
			// Routing will not fix a next hop that leads to an impostor.
			return end(authErr)
		}
		if noRoute != nil {
			// The next hops routing offers now, without waiting for
			// others: a relay said the destination may be unreachable.
			if hops = n.router.nextHops(peer); !slices.ContainsFunc(hops, func(h string) bool { return !failed.has(n, h) && n.link(h) != nil }) {
				return end(noRoute)
			}
			continue
		}
		// Every next hop routing offers failed. Where the node still holds
		// their links, the reset came from the path beyond them (a relay
		// that lost its link onward, or one that resets the circuits it
		// carries), which routing may never report: the neighbours
		// advertising a route routing did not choose are tried first.
		if failed.linksHeld(n) {
			if hops = n.untriedAdvertisers(peer, failed); len(hops) > 0 {
				for _, h := range hops {
					fallback[h] = true
				}
				continue
			}
		}
		// The opens passed over may still carry the circuit; judged when
		// they fail, as the others were.
		if race.running > 0 {
			if c := race.await(ctx); c != nil {
				return c, nil
			}
			if err := judgePassedOver(); err != nil {
				return end(err)
			}
			if authErr != nil || noRoute != nil {
				hops = n.router.nextHops(peer)
				continue
			}
		}
		// Else routing is withdrawing them; wait for it to offer a new
		// one while the caller's deadline allows. A neighbour tried
		// before as a fallback is tried again once routing chooses it.
		if hops = n.awaitNewHopUntil(ctx, peer, failed.skip(n), n.draining); hops == nil {
			return nil, refused(circuit.LinkLost, fmt.Sprintf("no next hop toward %s could carry the circuit: %v", peer, errors.Join(errs...)))
		}
	}
}

// linkLost reports whether err, a dial's failure on a next hop, is its
// link's end: one lost (links.ErrLinkLost) or one this node closed
// itself while running (links.ErrClosed: to make room for another link,
// as a duplicate's loser). Before, the dial failed at once on the
// latter, though another next hop reached the destination
// (TestDialOnALinkTheNodeClosedTriesAnotherNextHop). Once Close has
// begun it is not: the dial is refused, shutting down.
func (n *Node) linkLost(err error) bool {
	return errors.Is(err, links.ErrLinkLost) || errors.Is(err, links.ErrClosed) && n.running()
}

// avoidLast moves the next hops in avoid that are among hops to the end,
// in avoid's order: the other next hops are tried first. When every one
// of hops is avoided, the neighbours advertising a route routing did not
// find feasible join them (marked in fallback), those not avoided first:
// the relays' own routes and the hop limit bound where they lead. An
// avoided next hop is still tried when nothing else is left.
func (n *Node) avoidLast(dest string, hops, avoid []string, fallback map[string]bool) []string {
	out := make([]string, 0, len(hops))
	for _, h := range hops {
		if !slices.Contains(avoid, h) {
			out = append(out, h)
		}
	}
	if len(out) == len(hops) {
		return hops
	}
	cand := hops
	if len(out) == 0 {
		cand = slices.Clone(hops)
		for _, h := range n.router.advertisers(dest) {
			if !slices.Contains(hops, h) && n.link(h) != nil {
				cand = append(cand, h)
				fallback[h] = true
				if !slices.Contains(avoid, h) {
					out = append(out, h)
				}
			}
		}
	}
	for _, h := range avoid {
		if slices.Contains(cand, h) {
			out = append(out, h)
		}
	}
	return out
}

// untriedAdvertisers are the neighbours advertising a route to dest that
// a dial has not tried yet (failed) and the node holds a link to.
func (n *Node) untriedAdvertisers(dest string, failed failedHops) []string {
	var out []string
	for _, h := range n.router.advertisers(dest) {
		if _, tried := failed[h]; !tried && n.link(h) != nil {
			out = append(out, h)
		}
	}
	return out
}

// failedHops are the next hops a Dial tried and that failed, by name.
type failedHops map[string]failedHop

// failedHop is the link a next hop failed on; always, when the failure
// was the next hop's own (a refusal, an impostor) rather than its link's;
// fallback, when it was tried as a neighbour advertising a route routing
// did not choose (it is tried again if routing chooses it).
type failedHop struct {
	link     links.Link
	always   bool
	fallback bool
}

// skipped reports whether a dial passes next hop h over in its current
// round: it failed (has), or it failed as a fallback and is one again.
func (f failedHops) skipped(n *Node, h string, fallback map[string]bool) bool {
	return f.has(n, h) || fallback[h] && f[h].fallback
}

// has reports whether next hop h failed and is not worth another try:
// it failed on its own account, or the node still holds the link the
// failure came from. A link that lost to a duplicate (package links,
// "Duplicate links") goes down as the new one to the same neighbour comes
// up; an open that failed on the old link is made again on the new one.
// A fallback's failure does not count: routing may choose it since.
func (f failedHops) has(n *Node, h string) bool {
	fh, ok := f[h]
	return ok && !fh.fallback && (fh.always || n.link(h) == fh.link)
}

// linksHeld reports whether the node still holds every link a next hop
// failed on: the failures came from the paths beyond them.
func (f failedHops) linksHeld(n *Node) bool {
	for h, fh := range f {
		if fh.link == nil || n.link(h) != fh.link {
			return false
		}
	}
	return true
}

// skip is has as the filter of awaitNewHop.
func (f failedHops) skip(n *Node) func(string) bool {
	return func(h string) bool { return f.has(n, h) }
}

// answerBound is the time an open to dest through next hop nh waits
// for its answer alone: Limits.HeaderTimeout when another next hop is
// left (one of rest, the hops after nh in this round, or a neighbour
// advertising dest not tried yet), else 0, the dial's deadline. Past it
// the open keeps running and the next hop is tried beside it (hopRace).
// Before, a relay that swallowed opens, its link and probes healthy,
// held the first dial through it for its whole deadline and failed it,
// though another next hop reached dest
// (TestAttackSwallowingRelayFirstDialMoves).
func (n *Node) answerBound(dest, nh string, rest []string, failed failedHops, fallback map[string]bool) time.Duration {
	bound := n.cfg.Limits.HeaderTimeout
	for _, h := range rest {
		if !failed.skipped(n, h, fallback) && n.link(h) != nil {
			return bound
		}
	}
	if slices.ContainsFunc(n.untriedAdvertisers(dest, failed), func(h string) bool { return h != nh }) {
		return bound
	}
	return 0
}

// dialVia opens the circuit through neighbour nh on l, the node's link to
// it when the attempt began.
func (n *Node) dialVia(ctx context.Context, nh string, l links.Link, o *circuit.Open, opt DialOptions, span trace.Span) (Conn, error) {
	if l == nil {
		return nil, fmt.Errorf("next hop %s: %w", nh, links.ErrLinkLost)
	}
	return n.dialOn(ctx, l, o, opt, span)
}

// dialOn opens the circuit on link l.
func (n *Node) dialOn(ctx context.Context, l links.Link, o *circuit.Open, opt DialOptions, span trace.Span) (Conn, error) {
	nh := l.Peer()
	t, err := n.limits.admit(limitSource{}, "", nh)
	if err != nil {
		return nil, &circuit.RefusedError{Code: circuit.Overloaded, Node: n.cfg.Name, Dest: o.Dest, Service: o.Service, Reason: err.Error()}
	}
	if n.cfg.E2E != E2EOff && !opt.Early && !opt.raced {
		done, err := n.awaitKey(ctx, o)
		if err != nil {
			t.release()
			return nil, err
		}
		if done != nil {
			defer done()
		}
	}
	if opt.opening != nil {
		// A link whose peer grants no more streams (every circuit it
		// allows in use, or a peer withholding them) holds the open
		// in openStream: that wait counts in the race's bound.
		opt.opening()
	}
	s, err := openStreamOrSay(ctx, l, opt.full)
	if err != nil {
		t.release()
		return nil, err
	}
	setLinkAttrs(span, l)
	openSent(span, nh)
	c, err := n.openCircuit(ctx, l, s, o, opt)
	if err != nil {
		t.release()
		var re *circuit.RefusedError
		if errors.As(err, &re) {
			spanResult(span, codeLabel(re.Code), re.Node)
		}
		return nil, dialCause(o, err)
	}
	if !opt.Early {
		spanResult(span, codeLabel(circuit.Accepted), o.Dest)
	}
	tc := n.track(c, "dial", span, t, nil)
	tc.via = nh
	return tc, nil
}

// openStream opens a circuit stream on l. The links of package links
// name the operation and the peer in their errors ("open stream to b:
// ..."); another transport's get them here, so that each error says it
// once. Before, a dial on a link closing under it failed with "open
// stream to b: open stream to b: link to b closed".
func openStream(ctx context.Context, l links.Link) (links.Stream, error) {
	s, err := l.OpenStream(ctx)
	if err != nil {
		if prefix := "open stream to " + l.Peer() + ":"; !strings.HasPrefix(err.Error(), prefix) {
			return nil, fmt.Errorf("open stream to %s: %w", l.Peer(), err)
		}
		return nil, err
	}
	return s, nil
}

// openStreamOrSay is openStream calling full first, when set, if l's
// peer grants no stream at once (links.StreamTrier): the dial then tries
// its next hop left while this open waits for a stream.
func openStreamOrSay(ctx context.Context, l links.Link, full func()) (links.Stream, error) {
	if t, ok := l.(links.StreamTrier); ok && full != nil {
		s, err := t.TryOpenStream()
		if !errors.Is(err, links.ErrNoStreamCredit) {
			return s, err
		}
		full()
	}
	return openStream(ctx, l)
}

// dialCause is err, the failure of package circuit's dial of o, without
// the destination it names first ("circuit: dial c/echo: "), which
// DialWith names: a Dial failed with "dial c/echo: circuit: dial c/echo:
// context deadline exceeded".
func dialCause(o *circuit.Open, err error) error {
	if u := errors.Unwrap(err); u != nil && strings.HasPrefix(err.Error(), "circuit: dial "+o.Dest+"/"+o.Service+": ") {
		return u
	}
	return err
}

// openCircuit writes the open header on s and, unless opt.Early, waits
// for the destination's answer. With end-to-end security (the default) the
// circuit is sealed.
func (n *Node) openCircuit(ctx context.Context, l links.Link, s links.Stream, o *circuit.Open, opt DialOptions) (*circuit.Conn, error) {
	if n.cfg.E2E != E2EOff {
		return n.openSealed(ctx, l, s, o, opt)
	}
	local := circuit.Addr{Node: n.cfg.Name, Service: o.Service}
	if opt.Early {
		return circuit.DialEarly(s, o, local)
	}
	return circuit.Dial(ctx, s, o, local)
}

// recentlyKnown reports whether routing holds an entry for dest, reachable
// or not: a node it has heard of, as opposed to a name nobody announced.
func (n *Node) recentlyKnown(dest string) bool {
	n.router.mu.Lock()
	known := n.router.eng.Known(dest)
	n.router.mu.Unlock()
	return known || n.events.recentlyLost(dest)
}

// awaitNewHop waits until routing offers a next hop toward dest that skip
// does not refuse, or ctx ends (nil). It looks again at each change of a
// route and at least every routeRecheck (for what no route change
// reports: a link table or a skip that changed). Before, it polled
// routing every 10 ms, its lock included, and a neighbour holding
// relayed opens waiting for a lost route had each take that lock 100
// times a second (TestAttackRelayWaitsForALostRoute).
func (n *Node) awaitNewHop(ctx context.Context, dest string, skip func(string) bool) []string {
	return n.awaitNewHopUntil(ctx, dest, skip, nil)
}

// awaitNewHopUntil is awaitNewHop that also ends when stop is closed: a dial's
// ends when Close begins (n.draining), which refuses it.
func (n *Node) awaitNewHopUntil(ctx context.Context, dest string, skip func(string) bool, stop <-chan struct{}) []string {
	var tick *time.Ticker // made at the first wait
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	for {
		changed := n.router.changes()
		for _, h := range n.router.nextHops(dest) {
			if !skip(h) && n.link(h) != nil {
				return n.router.nextHops(dest)
			}
		}
		if tick == nil {
			tick = time.NewTicker(routeRecheck)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-n.ctx.Done(): // the node closes: it waits for relays
			return nil
		case <-stop:
			return nil
		case <-changed:
		case <-tick.C:
		}
	}
}

// routeRecheck is how often awaitNewHop looks at routing again when no
// route changed.
const routeRecheck = 100 * time.Millisecond

// dialLocal connects a circuit to a service on this node over the
// loopback link, so that dialling one's own name behaves like any other
// circuit.
func (n *Node) dialLocal(ctx context.Context, o *circuit.Open, opt DialOptions, span trace.Span) (Conn, error) {
	l, err := n.loopLink()
	if err != nil {
		endSpan(span, "error", 0, 0, err)
		return nil, err
	}
	c, err := n.dialOn(ctx, l, o, opt, span)
	if err != nil {
		endSpan(span, resultLabel(err), 0, 0, err)
	}
	return c, err
}

// PingResult is one echo round trip over a fresh circuit.
type PingResult struct {
	Open time.Duration // time to open the circuit (one round trip)
	RTT  time.Duration // time for one byte to come back over the open circuit
	Path []string      // nodes crossed, source first, destination last
}

// bindContext ends c's reads and writes at ctx's deadline, and at once
// when ctx is done: a cancelled context has no deadline, so setting only
// the deadline left a read blocked past the cancellation for as long as
// the peer liked (TestPingEndsWhenCancelledAfterDial,
// TestAttackInfoHangsPastItsCancel). stop ends the watch.
func bindContext(ctx context.Context, c net.Conn) (stop func() bool) {
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	return context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
}

// Ping opens a circuit to peer's echo service recording the path, then
// times one byte echoed over it. ctx bounds the whole of it: once ctx is
// done the echo's Write or Read ends, and Ping returns an error wrapping
// ctx.Err().
func (n *Node) Ping(ctx context.Context, peer string) (PingResult, error) {
	start := time.Now()
	c, err := n.DialWith(ctx, peer, EchoService, DialOptions{RecordPath: true})
	if err != nil {
		return PingResult{}, err
	}
	defer c.Close()
	res := PingResult{Open: time.Since(start), Path: c.Path()}
	defer bindContext(ctx, c)()
	fail := func(err error) (PingResult, error) {
		if cerr := ctx.Err(); cerr != nil {
			return res, fmt.Errorf("ping %s: %w (%w)", peer, cerr, err)
		}
		return res, fmt.Errorf("ping %s: %w", peer, err)
	}
	var b [1]byte
	t0 := time.Now()
	if _, err := c.Write([]byte{'p'}); err != nil {
		return fail(err)
	}
	if _, err := c.Read(b[:]); err != nil {
		return fail(err)
	}
	res.RTT = time.Since(t0)
	return res, nil
}

// hopRace runs a dial's opens through its next hops, each in a goroutine
// of its own, so that an open with no answer within its bound keeps
// running while the dial tries the next hop: whichever carries the
// circuit first is the dial's, and stop cancels the others (one that
// carries it after all is reset, the dial's span left to the winner).
// Before, an open given up after its bound was reset, and an honest path
// slower than the bound (a busy relay, a starved destination) failed a
// dial it carried before the deadline
// (TestDialPassedOverNextHopStillCarriesTheCircuit).
type hopRace struct {
	results chan hopResult // unbuffered: a result is taken, or dropped after stop
	done    chan struct{}  // closed by stop
	cancels []context.CancelFunc
	running int             // opens passed over, still running
	fails   []hopFail       // failures of opens passed over, not judged yet
	carried func(nh string) // called with the next hop of an open passed over that carries the circuit
}

// passOver is why hopRace.run passed an open over, if it did.
type passOver int

const (
	notPassed  passOver = iota
	passedSlow          // no answer within the bound
	passedFull          // the link granted no stream at once
)

// hopFail is the failure err of the open through next hop nh on link l,
// begun at began.
type hopFail struct {
	nh    string
	l     links.Link
	began time.Time
	err   error
}

// hopResult is an open's outcome, id its place in hopRace.cancels.
type hopResult struct {
	id   int
	c    Conn
	fail hopFail
}

func newHopRace() *hopRace {
	return &hopRace{results: make(chan hopResult), done: make(chan struct{})}
}

// run starts open through next hop nh on l and waits for its outcome,
// for at most bound (0: until it ends) after open calls opening (it
// starts on its link: the wait for a stream counts, the wait for
// another dial's handshake before does not), or until open calls full
// (its link grants no stream now; full is nil when bound is 0). It
// returns the outcome, or the circuit of an open passed over before if
// that comes first (this one keeps running until stop), or pending once
// bound passed or full was called: the open keeps running, and await or
// a later run takes its outcome; passed says which (notPassed: the
// outcome is returned).
func (r *hopRace) run(ctx context.Context, nh string, l links.Link, bound time.Duration, open func(ctx context.Context, opening, full func()) (Conn, error)) (c Conn, err error, passed passOver) {
	id := len(r.cancels)
	octx, cancel := context.WithCancel(ctx)
	r.cancels = append(r.cancels, cancel)
	started, noStream := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var full func()
	if bound > 0 {
		full = sync.OnceFunc(func() { close(noStream) })
	}
	began := time.Now()
	go func() {
		c, err := open(octx, func() { once.Do(func() { close(started) }) }, full)
		select {
		case r.results <- hopResult{id: id, c: c, fail: hopFail{nh: nh, l: l, began: began, err: err}}:
		case <-r.done:
			if tc, ok := c.(*trackedConn); ok {
				tc.discard()
			} else if c != nil {
				c.Close()
			}
		}
	}()
	var onLink <-chan struct{}
	if bound > 0 {
		onLink = started
	}
	var timeout <-chan time.Time
	for {
		select {
		case <-onLink:
			onLink = nil
			t := time.NewTimer(bound)
			defer t.Stop()
			timeout = t.C
		case res := <-r.results:
			if res.id == id {
				return res.c, res.fail.err, notPassed
			}
			if c, ok := r.took(res); ok {
				return c, nil, notPassed
			}
		case <-timeout:
			r.running++
			return nil, nil, passedSlow
		case <-noStream:
			r.running++
			return nil, nil, passedFull
		}
	}
}

// await waits, while ctx allows, for the opens passed over: it returns
// the first circuit one carries, or nil once none is left running.
func (r *hopRace) await(ctx context.Context) Conn {
	for r.running > 0 {
		select {
		case res := <-r.results:
			if c, ok := r.took(res); ok {
				return c
			}
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// took notes the outcome of an open passed over.
func (r *hopRace) took(res hopResult) (Conn, bool) {
	r.running--
	if res.fail.err != nil {
		r.fails = append(r.fails, res.fail)
		return nil, false
	}
	if r.carried != nil {
		r.carried(res.fail.nh)
	}
	return res.c, true
}

// takeFails returns the failures of the opens passed over noted so far.
func (r *hopRace) takeFails() []hopFail {
	f := r.fails
	r.fails = nil
	return f
}

// stop cancels the opens still running; their goroutines end as the
// opens do.
func (r *hopRace) stop() {
	close(r.done)
	for _, cancel := range r.cancels {
		cancel()
	}
}
