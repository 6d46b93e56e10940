package node

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/routing"
)

// router drives the pure routing engine: link events and received messages
// go in under a mutex (they only compute), Ready's messages go out through
// the links' non-blocking control queues, and one goroutine calls Tick when
// the engine asks for it. Lookups take the same mutex briefly. A message
// that arrives while the mutex is held waits in the inbox, which every
// engine input but a lookup empties first.
type router struct {
	n    *Node
	cert *originCertifier
	mu   sync.Mutex
	eng  *routing.Engine
	in   routerInbox
	// delivered is the time of the engine's last input (drainLocked), from
	// which the inbox's messages are delivered at their arrival. Guarded
	// by mu.
	delivered time.Time
	kick      chan struct{} // wakes the ticker when the next deadline moved before armed
	// armed is when the tick loop wakes next if nothing kicks it; zero
	// until the loop first sleeps. Input that moves the engine's next
	// tick before it kicks the loop. Guarded by mu.
	armed time.Time
	reach *reachDamper // guarded by mu
	// drainPenalty is the engine's routing.Config.DrainPenalty (set once).
	drainPenalty routing.Metric
	// Messages refused over their neighbour's receive budget since the
	// last warning, and when it was (refusedLocked). Guarded by mu.
	overBudget uint64
	overWarned time.Time
	// changed is closed and forgotten when the engine reports a change
	// of a route (flushLocked); nil while no one waits. Guarded by mu.
	changed chan struct{}
	done    chan struct{}
	once    sync.Once
}

func newRouter(n *Node) (*router, error) {
	cert := newOriginCertifier(n.identity(), n.log, n.cfg.Limits.MaxRoutes)
	eng, err := routing.New(routing.Config{
		Certifier:      cert,
		Self:           n.cfg.Name,
		Leaf:           n.cfg.Leaf,
		Hysteresis:     routing.Metric(n.cfg.Routing.Hysteresis),
		UpdateInterval: n.cfg.Routing.UpdateInterval,
		MaxRoutes:      n.cfg.Limits.MaxRoutes,
		Seed:           seedFor(n.cfg.Name),
		// Later than every epoch a previous life of this node reached
		// (one per 65,536 seqnos, at most 64 seqnos a second), so that
		// the attestations it signed are older than this life's.
		Epoch: uint64(time.Now().UnixMilli()),
	})
	if errors.Is(err, routing.ErrInvalidConfig) {
		return nil, fmt.Errorf("%w: Routing: %w", ErrInvalidConfig, err)
	}
	if err != nil {
		return nil, fmt.Errorf("routing engine: %w", err)
	}
	return &router{n: n, cert: cert, eng: eng, kick: make(chan struct{}, 1), reach: newReachDamper(),
		drainPenalty: eng.Config().DrainPenalty(), done: make(chan struct{})}, nil
}

// seedFor derives a deterministic seed from the node name.
func seedFor(name string) int64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return int64(h)
}

func (r *router) start() {
	r.n.wg.Add(1)
	go func() {
		defer r.n.wg.Done()
		r.tickLoop()
	}()
}

func (r *router) stop() { r.once.Do(func() { close(r.done) }) }

// idleWait is how long the tick loop sleeps while the engine has no
// deadline (before its first event).
const idleWait = time.Hour

// tickLoop calls Tick when the engine's next tick is due, and reports
// the reachability changes held back (reachDamper) when they are. Its timer is
// armed for a deadline and left alone while the engine's deadline moves
// later: it then fires early and the loop arms it again. Only a deadline
// that moves before the armed one kicks the loop (apply), which ticks at
// once when it is due and otherwise takes a new timer for the earlier
// deadline. A node receiving a burst of routing messages thus neither
// resets its timer once per message nor moves it earlier: in a
// testing/synctest bubble, where the timers of every simulated node share
// one heap, a running timer reset to an earlier instant costs a pass over
// that whole heap, while a new timer costs a push.
func (r *router) tickLoop() {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	var at time.Time // when t fires; meaningful while running
	running := false
	for {
		r.mu.Lock()
		now := time.Now()
		drained := r.drainLocked(now)
		if next := r.eng.NextTick(); !next.IsZero() && !next.After(now) {
			r.eng.Tick(now)
			r.flushLocked()
		} else if at := r.reach.next(); drained || !at.IsZero() && !at.After(now) {
			r.flushLocked() // the inbox's outputs, the reachability changes due
		}
		next := r.nextDeadlineLocked()
		if next.IsZero() {
			next = now.Add(idleWait)
		}
		switch {
		case running && !next.Before(at):
			// Armed at or before the deadline: it fires early at worst.
		case running:
			// Earlier than armed: a new timer rather than a reset of the
			// running one (see above).
			t.Stop()
			t = time.NewTimer(next.Sub(now))
			at = next
		case t == nil:
			t = time.NewTimer(next.Sub(now))
			at, running = next, true
		default:
			t.Reset(next.Sub(now)) // t fired: it is in no heap
			at, running = next, true
		}
		r.armed = at
		r.mu.Unlock()
		select {
		case <-r.done:
			return
		case <-r.kick:
		case <-t.C:
			running = false
		}
	}
}

// apply runs one engine input and delivers its outputs, and kicks the
// tick loop when the engine's next tick moved before the loop's timer.
func (r *router) apply(f func(now time.Time)) {
	r.mu.Lock()
	now := time.Now()
	r.drainLocked(now) // the messages received before this input
	f(now)
	r.appliedLocked()
}

// appliedLocked delivers the outputs of the engine input just run, unlocks
// mu, and kicks the tick loop when the engine's next tick moved before the
// loop's timer.
func (r *router) appliedLocked() {
	r.flushLocked()
	next := r.nextDeadlineLocked()
	kick := r.armed.IsZero() || (!next.IsZero() && next.Before(r.armed))
	r.mu.Unlock()
	if kick {
		r.wake()
	}
}

func (r *router) linkUp(peer string, cost links.Cost, leaf bool) {
	r.apply(func(now time.Time) { r.eng.LinkUp(now, peer, routing.Metric(cost), leaf) })
}

// linkCost gives the engine a link's new cost (input): the link's probe
// loop, which measures it, does not wait for a busy engine.
func (r *router) linkCost(peer string, cost links.Cost) {
	r.input(inboxMsg{peer: peer, cost: cost, isCost: true})
}

func (r *router) linkDown(peer string) {
	r.apply(func(now time.Time) { r.eng.LinkDown(now, peer) })
}

// receive gives the engine a neighbour's routing message (input).
func (r *router) receive(peer string, payload []byte) {
	r.input(inboxMsg{peer: peer, payload: payload})
}

// input gives the engine a message or a link's new cost, or queues it in
// the inbox when the engine is busy and wakes the tick loop to deliver
// it: a link's goroutines wait for the engine only while the inbox is
// full. An input the engine refuses changed nothing: it costs the lock
// and the refusal, not a pass over the engine's outputs and deadlines.
func (r *router) input(m inboxMsg) {
	if !r.mu.TryLock() {
		if r.in.put(m) {
			r.wake()
			return
		}
		r.mu.Lock() // the inbox is full
	}
	now := time.Now()
	taken := r.drainLocked(now) // this link's earlier inputs among them
	if r.deliverLocked(now, m) {
		taken = true
	}
	if !taken {
		r.mu.Unlock()
		return
	}
	r.appliedLocked()
}

// drainLocked delivers the inputs in the inbox to the engine, in the
// order and at the times they arrived, and reports whether the engine took
// any. Every engine input calls it first, at the time now it is given:
// the engine's clock never moves back. A message is delivered at its
// arrival, not at now, so that a neighbour's receive budget and a route's
// refresh count from when the message came, as they did when every
// message was delivered as it arrived.
func (r *router) drainLocked(now time.Time) bool {
	if r.in.queued.Load() == 0 {
		// An input queued after this look found the lock held and woke
		// the tick loop, which delivers it.
		r.delivered = now
		return false
	}
	taken := false
	msgs := r.in.take()
	defer clear(msgs) // delivered: their payloads are not kept
	for _, m := range msgs {
		at := m.at
		if at.Before(r.delivered) {
			at = r.delivered
		}
		if at.After(now) {
			at = now
		}
		r.delivered = at
		if r.deliverLocked(at, m) {
			taken = true
		}
	}
	r.delivered = now
	return taken
}

// deliverLocked gives one input to the engine and reports whether the
// engine took it; a refused message is counted and logged (refusedLocked).
func (r *router) deliverLocked(now time.Time, m inboxMsg) bool {
	if m.isCost {
		r.eng.LinkCost(now, m.peer, routing.Metric(m.cost))
		return true
	}
	if err := r.eng.Receive(now, m.peer, m.payload); err != nil {
		r.refusedLocked(now, m.peer, err)
		return false
	}
	return true
}

// wake has the tick loop run its next pass at once.
func (r *router) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// overBudgetWarnEvery is how often at most the router warns of
// neighbours over their routing receive budget.
const overBudgetWarnEvery = time.Minute

// refusedLocked counts and logs a message the engine refused: a message
// over its neighbour's budget (routing.ErrOverBudget) with one warning a
// minute at most, naming the last neighbour and how many were refused
// since the last warning; any other at debug level.
func (r *router) refusedLocked(now time.Time, peer string, err error) {
	if !errors.Is(err, routing.ErrOverBudget) {
		r.n.metrics.routingMalformed.Inc()
		r.n.log.Debug("bad routing message", "peer", peer, "err", err)
		return
	}
	r.overBudget++
	if !r.overWarned.IsZero() && now.Sub(r.overWarned) < overBudgetWarnEvery {
		return
	}
	r.n.log.Warn("routing messages refused: neighbour over its receive budget", "peer", peer, "refused", r.overBudget, "err", err)
	r.overWarned, r.overBudget = now, 0
}

// setIdentity attests from now on with a renewed identity, announcing a
// new seqno so that the new certificate reaches every node.
func (r *router) setIdentity(id *identity.Identity) {
	r.cert.setIdentity(id)
	r.apply(func(now time.Time) { r.eng.NewSeqno(now) })
}

// flushLocked sends the engine's pending messages and publishes its events.
func (r *router) flushLocked() {
	rd := r.eng.Ready()
	if len(rd.Events) > 0 && r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
	for _, m := range rd.Messages {
		l := r.n.link(m.To)
		if l == nil {
			continue
		}
		if err := l.SendRouting(m.Payload); err != nil {
			r.n.metrics.routingDropped.Inc()
		}
	}
	for _, ev := range rd.Events {
		if ev.Dest == r.n.cfg.Name {
			continue
		}
		var kind EventKind
		switch ev.Kind {
		case routing.PeerUp:
			kind = PeerUp
			if r.reach.back(ev.Dest) {
				r.n.log.Debug("route replaced", "peer", ev.Dest, "next_hop", ev.Route.NextHop, "cost", ev.Route.Metric)
				continue
			}
		case routing.PeerDown:
			kind = PeerDown
			// It may be restarting, which drops the sessions it issued:
			// the next circuit to it takes a one-message handshake rather
			// than a refused resumption.
			r.n.seal.Load().ForgetSession(ev.Dest)
			// A neighbour still advertises it, unfeasibly: routing
			// dropped the route as its metric rose too far (a link on
			// the path slowed) and asked for a new seqno, which
			// usually brings it back within a round trip. Report the
			// loss only if it is not back within RouteWait, or once no
			// neighbour advertises it (lostDue).
			if wait := r.n.cfg.RouteWait; wait > 0 && len(r.eng.Advertisers(ev.Dest)) > 0 && r.reach.hold(ev.Route, time.Now().Add(wait)) {
				r.n.log.Debug("route lost, awaiting a new seqno", "peer", ev.Dest)
				continue
			}
		default:
			r.n.log.Debug("next hop changed", "peer", ev.Dest, "next_hop", ev.Route.NextHop, "cost", ev.Route.Metric)
			continue
		}
		if r.reach.note(ev.Dest, kind == PeerUp, time.Now()) {
			r.publishReach(kind, ev.Route, 0)
		}
	}
	if len(r.reach.lost) > 0 {
		r.reach.lostDue(time.Now(), func(peer string) bool { return len(r.eng.Advertisers(peer)) > 0 }, func(rt routing.Route) {
			if r.reach.note(rt.Dest, false, time.Now()) {
				r.publishReach(PeerDown, rt, 0)
			}
		})
	}
	if len(r.reach.held) > 0 {
		r.reach.due(time.Now(), func(peer string, up, changed bool, changes int) {
			if !changed {
				r.n.log.Info("peer reachability changed and changed back", "peer", peer, "reachable", up, "changes", changes)
				return
			}
			kind := PeerDown
			if up {
				kind = PeerUp
			}
			rt, ok := r.eng.Lookup(peer)
			if !ok {
				rt = routing.Route{Dest: peer, Metric: r.eng.Config().Infinity}
			}
			r.publishReach(kind, rt, changes)
		})
	}
}

// publishReach logs and publishes a reachability change of rt.Dest;
// held is the number of changes held back before it (reachDamper).
func (r *router) publishReach(kind EventKind, rt routing.Route, held int) {
	args := []any{"peer", rt.Dest, "next_hop", rt.NextHop, "cost", rt.Metric, "hops", rt.Hops}
	if held > 0 {
		args = append(args, "changes_held", held)
	}
	r.n.log.Info(kind.String(), args...)
	r.n.events.publish(Event{Kind: kind, Peer: rt.Dest, Time: time.Now(), Route: peerInfo(rt, nil)})
}

// nextDeadlineLocked is when the tick loop must run next: the engine's
// next tick, or the first reachability change held back, whichever is
// first (zero: neither).
func (r *router) nextDeadlineLocked() time.Time {
	next := r.eng.NextTick()
	if at := r.reach.next(); !at.IsZero() && (next.IsZero() || at.Before(next)) {
		next = at
	}
	return next
}

// nextHops returns the best next hop toward dest, then the feasible
// alternates.
func (r *router) nextHops(dest string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng.NextHops(dest)
}

// reachable reports whether routing offers a next hop toward dest, without
// the allocation of nextHops.
func (r *router) reachable(dest string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.eng.NextHop(dest)
	return ok
}

// changes returns a channel closed at the next change of a route (any
// event of the engine): awaitNewHop waits on it rather than polling.
func (r *router) changes() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	return r.changed
}

// advertisers lists the neighbours advertising a route to dest, feasible
// or not (routing.Engine.Advertisers).
func (r *router) advertisers(dest string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng.Advertisers(dest)
}

// detours returns the other neighbours that reach dest by a next hop of
// their own (routing.Engine.Detours).
func (r *router) detours(dest string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng.Detours(dest)
}

func (r *router) lookup(dest string) (routing.Route, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng.Lookup(dest)
}

func peerInfo(rt routing.Route, hops []string) PeerInfo {
	p := PeerInfo{Name: rt.Dest, Reachable: rt.Reachable, NextHop: rt.NextHop, Cost: uint32(rt.Metric), Hops: rt.Hops, Seqno: rt.Seqno}
	if !rt.Reachable {
		p.NextHop = ""
	}
	if len(hops) > 1 {
		p.Alternates = hops[1:]
	}
	return p
}

// Peers lists every node known to routing (not this node), sorted by name.
func (n *Node) Peers() []PeerInfo {
	r := n.router
	r.mu.Lock()
	routes := r.eng.Routes()
	out := make([]PeerInfo, 0, len(routes))
	for _, rt := range routes {
		if rt.Dest == n.cfg.Name {
			continue
		}
		out = append(out, peerInfo(rt, r.eng.NextHops(rt.Dest)))
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Peer returns what routing knows of one node.
func (n *Node) Peer(name string) (PeerInfo, bool) {
	rt, ok := n.router.lookup(name)
	if !ok {
		return PeerInfo{Name: name}, false
	}
	return peerInfo(rt, n.router.nextHops(name)), true
}

// RoutingStats returns the routing engine's counters.
func (n *Node) RoutingStats() routing.Stats {
	n.router.mu.Lock()
	defer n.router.mu.Unlock()
	return n.router.eng.Stats()
}
