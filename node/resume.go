package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// eventResumed is the span event a path that took a circuit over carries.
const eventResumed = "circuit.resumed"

var (
	attrResumeStall    = attribute.Key("circuitmesh.resume.stall_ms")
	attrResumeAttempts = attribute.Key("circuitmesh.resume.attempts")
	attrResumeCause    = attribute.Key("circuitmesh.resume.cause")
)

// resumeMetrics count resumes and resumes that failed, by role;
// unresumed counts the failures of both roles for the log line that
// reports them (a Prometheus counter is not read back).
type resumeMetrics struct {
	resumes, failures *prometheus.CounterVec
	unresumed         *atomic.Uint64
}

func newResumeMetrics(reg *prometheus.Registry) resumeMetrics {
	m := resumeMetrics{
		resumes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "circuitmesh_circuit_resumes_total",
			Help: "Resumable circuits a new path took over after their path failed, by role (dial, accept)."}, []string{"role"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "circuitmesh_circuit_resume_failures_total",
			Help: "Resumable circuits that found no new path within the resume timeout, whose resume was refused, or whose resumed paths kept failing with nothing moved, by role."}, []string{"role"}),
		unresumed: new(atomic.Uint64),
	}
	reg.MustRegister(m.resumes, m.failures)
	for _, role := range []string{"dial", "accept"} {
		m.resumes.WithLabelValues(role)
		m.failures.WithLabelValues(role)
	}
	return m
}

// resumeOn reports whether a dial with opt to peer is made resumable.
func (n *Node) resumeOn(peer string, opt DialOptions) bool {
	return n.cfg.E2E != E2EOff && n.cfg.ResumeTimeout >= 0 && !opt.NoResume && peer != n.cfg.Name
}

// resumeTimeout is how long this node's ends of resumable circuits wait
// for a new path.
func (n *Node) resumeTimeout() time.Duration {
	if n.cfg.ResumeTimeout <= 0 {
		return circuit.DefaultResumeTimeout
	}
	return n.cfg.ResumeTimeout
}

// resumableConn is a resumable circuit handed to the user. Each of its
// paths is a trackedConn of its own (span, limits, metrics).
type resumableConn struct {
	*circuit.Resumable
	first *trackedConn
}

// CloseWrite half-closes the circuit (see circuit.Resumable.CloseWrite);
// the span of the path it runs on records it.
func (c *resumableConn) CloseWrite() error {
	err := c.Resumable.CloseWrite()
	if tc, ok := c.Current().(*trackedConn); ok && err == nil {
		halfClose(tc.span, tc.role == "dial")
	}
	return err
}

// SessionResumed reports whether the path the circuit runs on now opened
// on a resumed end-to-end session (no handshake DH).
func (c *resumableConn) SessionResumed() bool {
	p, ok := c.Current().(interface{ SessionResumed() bool })
	return ok && p.SessionResumed()
}

// abort resets the circuit (node shutdown, an undeliverable circuit).
func (c *resumableConn) abort() { c.abortWith(circuit.CloseShuttingDown) }

// abortWith is abort with the close code the other end reads; this end's
// Reads and Writes report the same reset (as trackedConn's do).
func (c *resumableConn) abortWith(code uint64) {
	c.Resumable.Abort(code, circuit.LocalReset(code))
}

// resumeConfig is the configuration of one end of a circuit with peer
// (the destination a source dialled, the authenticated source of a
// destination's end); the node keeps the end in
// its set of resumable circuits until it ends: Close resets them and waits
// for their goroutines (circuitSet.endAll). The end is charged to acct
// (the destination's budget, or the dial budget for a source): its hooks
// call the account themselves, as hooks wrapped around these would cost
// three allocations per circuit.
func (n *Node) resumeConfig(role, peer string, acct *budgetAccount) (circuit.ResumeConfig, *tracked) {
	entry := n.resumables.add(false, nil)
	onPathFailed := markPathFailed
	if !acct.b.dial { // a destination's end waits for its resume in the budget
		onPathFailed = func(p circuit.Path, err error) {
			markPathFailed(p, err)
			acct.park()
		}
	}
	return circuit.ResumeConfig{
		Timeout:   n.resumeTimeout(),
		OpenSlack: n.cfg.Limits.HeaderTimeout,
		Budget:    acct,
		OnEnd: func() {
			n.closeAccount(acct, peer)
			n.resumables.remove(entry)
		},
		OnPathFailed: onPathFailed,
		OnResume: func(ev circuit.ResumeEvent) {
			acct.unpark()
			if ev.Err != nil {
				n.metrics.resume.failures.WithLabelValues(role).Inc()
				// One line per peer and role a minute, with the node's
				// count: a member can open resumable circuits and drop
				// them (a source), or drop those it carries or ends (a
				// relay, a destination), as many as it likes.
				total := n.metrics.resume.unresumed.Add(1)
				n.limits.floods.Warn("unresumed:"+role+":"+peer, "circuit lost its path and could not be resumed",
					"role", role, "peer", peer, "err", ev.Err, "node_unresumed_total", total)
				return
			}
			n.metrics.resume.resumes.WithLabelValues(role).Inc()
			if tc, ok := ev.Path.(*trackedConn); ok {
				tc.span.AddEvent(eventResumed, trace.WithAttributes(attrResumeStall.Int64(ev.Stall.Milliseconds()),
					attrResumeAttempts.Int(ev.Attempts), attrResumeCause.String(fmt.Sprint(ev.Cause))))
			}
			n.log.Debug("circuit resumed on a new path", "role", role, "stall", ev.Stall, "attempts", ev.Attempts, "cause", ev.Cause)
		},
	}, entry
}

// closeAccount gives back what a circuit held in the budget and, when
// the budget ended it (a destination's), says so: once per source a
// minute, as a source can have its circuits send here more than its
// share as often as it likes.
func (n *Node) closeAccount(acct *budgetAccount, source string) {
	if why := acct.close(); why != nil {
		n.limits.floods.Warn("overbudget:"+source, "resumable circuit reset: its buffers were over budget",
			"source", source, "err", why)
	}
}

// logSendWait says that a circuit dialled to dest waits for room for its
// retransmit buffer (newDialBudget): once per destination a minute, as a
// destination that never acknowledges holds them there as long as it
// likes.
func (n *Node) logSendWait(dest string, held, share, waiting int) {
	n.limits.floods.At(slog.LevelInfo, "sendwait:"+dest, "writes to a destination wait: the circuits dialled to it hold their share of the budget unacknowledged",
		"peer", dest, "held_bytes", held, "share_bytes", share, "waiting_circuits", waiting)
}

// markPathFailed records a failed path's failure for its span.
func markPathFailed(p circuit.Path, err error) {
	if tc, ok := p.(*trackedConn); ok {
		tc.failed.CompareAndSwap(nil, &err)
	}
}

// resumableSource makes a dialled circuit resumable: when its path fails,
// it opens a new one toward peer along the current best route. Its
// buffers are charged to peer's share of the budget of the circuits this
// node dials (newDialBudget): its Writes wait for room there.
func (n *Node) resumableSource(tc *trackedConn, peer, service string, opt DialOptions) (Conn, error) {
	acct := n.dbudget.open(peer)
	cfg, entry := n.resumeConfig("dial", peer, acct)
	cfg.Early = opt.Early
	// A path that made no progress while its links stayed up (a relay
	// that stopped forwarding) would be chosen again by routing, and so
	// would a next hop a redial failed through: the resume tries such
	// next hops last, and remembers them across later failures.
	avoid := newAvoidSet(resumeAvoidFor)
	pathFailed := cfg.OnPathFailed
	cfg.OnPathFailed = func(p circuit.Path, err error) {
		pathFailed(p, err)
		via := ""
		if tc, ok := p.(*trackedConn); ok {
			via = tc.via
		}
		n.log.Debug("resumable circuit's path failed", "peer", peer, "service", service, "via", via, "err", err)
		if via != "" && errors.Is(err, circuit.ErrNoProgress) {
			avoid.add(via, time.Now())
			if n.link(via) != nil {
				// Its links up, the relay is no less silent for the
				// node's next circuits to peer.
				n.suspects.add(peer, via, time.Now())
			}
		}
	}
	cfg.Redial = func(ctx context.Context) (circuit.Path, error) {
		// One attempt waits at most DialTimeout for its answer (a next hop
		// that died silently), and routing for a new next hop meanwhile.
		actx, cancel := context.WithTimeout(ctx, n.cfg.DialTimeout)
		defer cancel()
		// The new path's spans join the circuit's trace, under the
		// first path's dial span, and keep its sampling decision.
		actx = trace.ContextWithSpanContext(actx, tc.span.SpanContext())
		ropt := opt
		ropt.Early, ropt.resume = false, true
		ropt.avoid = avoid.order(time.Now())
		var tried []string
		ropt.tried = func(nh string) { tried = append(tried, nh) }
		c, err := n.dial(actx, peer, service, ropt)
		if err != nil {
			if len(tried) > 0 && ctx.Err() == nil {
				// The attempt failed through the last next hop it
				// tried (its own deadline passed, or a relay ended
				// it): the next attempt tries the others first.
				avoid.add(tried[len(tried)-1], time.Now())
			}
			n.log.Debug("resumable circuit's redial failed", "peer", peer, "service", service, "tried", tried, "err", err)
			return nil, err
		}
		return c.(*trackedConn), nil
	}
	r, err := circuit.NewResumableSource(tc, tc.LocalAddr(), tc.RemoteAddr(), cfg)
	if err != nil {
		acct.close()
		n.resumables.remove(entry)
		tc.Close()
		return nil, err
	}
	acct.bind(r)
	rc := &resumableConn{Resumable: r, first: tc}
	if !n.resumables.bindWait(entry, rc.abort, r.Wait) {
		rc.abort() // the node closed meanwhile
		r.Wait()
		return nil, fmt.Errorf("node: dial %s/%s: %w", peer, service, ErrClosed)
	}
	return rc, nil
}

// resumeAvoidFor is how long a resuming circuit keeps trying a next hop
// last after a path through it made no progress or a redial through it
// failed: long enough to outlast a resume and the ones soon after
// it, short enough that a relay that recovered is preferred again.
const resumeAvoidFor = 5 * time.Minute

// maxAvoided bounds the next hops a circuit remembers to try last.
const maxAvoided = 4

// avoidSet is the next hops a resuming circuit tries last, each with the
// time it last failed, at most maxAvoided (the oldest failure goes
// first). An entry ends after ttl: avoiding only reorders the next hops,
// so a circuit whose every route goes through an avoided hop still tries
// it, and after ttl it prefers it again as routing does.
type avoidSet struct {
	ttl time.Duration
	mu  sync.Mutex
	hop []avoided // oldest failure first
}

type avoided struct {
	name string
	at   time.Time
}

func newAvoidSet(ttl time.Duration) *avoidSet { return &avoidSet{ttl: ttl} }

// add records that a path or an attempt through hop failed at now.
func (s *avoidSet) add(hop string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hop = slices.DeleteFunc(s.hop, func(a avoided) bool { return a.name == hop })
	if len(s.hop) == maxAvoided {
		s.hop = slices.Delete(s.hop, 0, 1)
	}
	s.hop = append(s.hop, avoided{hop, now})
}

// remove forgets hop.
func (s *avoidSet) remove(hop string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hop = slices.DeleteFunc(s.hop, func(a avoided) bool { return a.name == hop })
}

// order returns the next hops to try last at now, the one that failed
// longest ago first, forgetting those that failed more than ttl ago.
func (s *avoidSet) order(now time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hop = slices.DeleteFunc(s.hop, func(a avoided) bool { return now.Sub(a.at) > s.ttl })
	out := make([]string, len(s.hop))
	for i, a := range s.hop {
		out[i] = a.name
	}
	return out
}

// last returns when a hop last failed, unless every entry is older than
// ttl at now.
func (s *avoidSet) last(now time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.hop) == 0 || now.Sub(s.hop[len(s.hop)-1].at) > s.ttl {
		return time.Time{}, false
	}
	return s.hop[len(s.hop)-1].at, true
}

// resumableDest makes an accepted circuit (FlagResumable) resumable. Its
// buffers and its waits for a resume are charged to its source's share of
// the node's budget (Limits.ResumeBuffer, Limits.MaxParked).
//
// The policy decides the circuit, not only the path it runs on: its
// entry, registered before the circuit can end (OnEnd forgets it), stands
// for every path, so that a new policy denying its source also ends it
// while it waits for a resume, and counts it once.
func (n *Node) resumableDest(tc *trackedConn, o *circuit.Open) net.Conn {
	acct := n.rbudget.open(o.Source)
	cfg, entry := n.resumeConfig("accept", o.Source, acct)
	var rcp atomic.Pointer[resumableConn]
	police := *tc.police.Load()
	police.deny = func() {
		if rc := rcp.Load(); rc != nil {
			rc.abortWith(circuit.CloseDenied)
		} // else the path's own entry, still registered, ends it
	}
	if d := n.authz.watch(&police); !d.Allowed {
		tc.deny()
	}
	end := cfg.OnEnd
	cfg.OnEnd = func() {
		n.authz.forget(&police)
		end()
	}
	r := circuit.NewResumableDest(tc, tc.LocalAddr(), tc.RemoteAddr(), n.resumeTable, o.Source, o.Service, cfg)
	acct.bind(r)
	rc := &resumableConn{Resumable: r, first: tc}
	rcp.Store(rc)
	n.authz.forget(tc.police.Load())
	if !n.resumables.bindWait(entry, rc.abort, r.Wait) {
		rc.abort() // the node closed meanwhile: the circuit is handed over reset
		r.Wait()
	}
	return rc
}

// resumePath hands an accepted FlagResume circuit to the circuit it names.
func (n *Node) resumePath(tc *trackedConn, o *circuit.Open) {
	if n.cfg.hooks != nil && n.cfg.hooks.resume != nil {
		n.cfg.hooks.resume(tc, o)
		return
	}
	if _, err := n.resumeTable.Resume(tc, o.Source, o.Service, time.Now().Add(n.cfg.Limits.HeaderTimeout)); err != nil {
		n.limits.badOpenLog.Debug("resume:"+o.Source, "refused to resume a circuit", "source", o.Source, "service", o.Service, "err", err)
		return
	}
	n.authz.forget(tc.police.Load()) // the circuit's entry stands for its paths (resumableDest)
}
