package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
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

// resumeMetrics count resumes and resumes that failed, by role.
type resumeMetrics struct {
	resumes, failures *prometheus.CounterVec
}

func newResumeMetrics(reg *prometheus.Registry) resumeMetrics {
	m := resumeMetrics{
		resumes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "circuitmesh_circuit_resumes_total",
			Help: "Resumable circuits a new path took over after their path failed, by role (dial, accept)."}, []string{"role"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "circuitmesh_circuit_resume_failures_total",
			Help: "Resumable circuits that found no new path within the resume timeout, whose resume was refused, or whose resumed paths kept failing with nothing moved, by role."}, []string{"role"}),
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
func (c *resumableConn) abort() { c.Resumable.Reset(circuit.CloseShuttingDown) }

// resumeConfig is the configuration of one end; the node keeps the end in
// its set of resumable circuits until it ends: Close resets them and waits
// for their goroutines (circuitSet.endAll).
func (n *Node) resumeConfig(role string) (circuit.ResumeConfig, *tracked) {
	entry := n.resumables.add(false, nil)
	return circuit.ResumeConfig{
		Timeout: n.resumeTimeout(),
		OnEnd:   func() { n.resumables.remove(entry) },
		OnPathFailed: func(p circuit.Path, err error) {
			if tc, ok := p.(*trackedConn); ok {
				tc.failed.CompareAndSwap(nil, &err) // its span reports the failure
			}
		},
		OnResume: func(ev circuit.ResumeEvent) {
			if ev.Err != nil {
				n.metrics.resume.failures.WithLabelValues(role).Inc()
				n.log.Info("circuit lost its path and could not be resumed", "role", role, "err", ev.Err)
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

// resumableSource makes a dialled circuit resumable: when its path fails,
// it opens a new one toward peer along the current best route.
func (n *Node) resumableSource(tc *trackedConn, peer, service string, opt DialOptions) (Conn, error) {
	cfg, entry := n.resumeConfig("dial")
	cfg.Early = opt.Early
	// A path that made no progress while its links stayed up (a relay
	// that stopped forwarding) would be chosen again by routing: the
	// resume tries the other next hops first.
	var avoidMu sync.Mutex
	avoid := ""
	pathFailed := cfg.OnPathFailed
	cfg.OnPathFailed = func(p circuit.Path, err error) {
		pathFailed(p, err)
		avoidMu.Lock()
		defer avoidMu.Unlock()
		avoid = ""
		if tc, ok := p.(*trackedConn); ok && errors.Is(err, circuit.ErrNoProgress) {
			avoid = tc.via
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
		avoidMu.Lock()
		ropt.avoid = avoid
		avoidMu.Unlock()
		c, err := n.dial(actx, peer, service, ropt)
		if err != nil {
			return nil, err
		}
		return c.(*trackedConn), nil
	}
	r, err := circuit.NewResumableSource(tc, tc.LocalAddr(), tc.RemoteAddr(), cfg)
	if err != nil {
		n.resumables.remove(entry)
		tc.Close()
		return nil, err
	}
	rc := &resumableConn{Resumable: r, first: tc}
	if !n.resumables.bindWait(entry, rc.abort, r.Wait) {
		rc.abort() // the node closed meanwhile
		r.Wait()
		return nil, fmt.Errorf("node: dial %s/%s: %w", peer, service, ErrClosed)
	}
	return rc, nil
}

// resumableDest makes an accepted circuit (FlagResumable) resumable. Its
// buffers and its waits for a resume are charged to its source's share of
// the node's budget (Limits.ResumeBuffer, Limits.MaxParked).
func (n *Node) resumableDest(tc *trackedConn, o *circuit.Open) net.Conn {
	cfg, entry := n.resumeConfig("accept")
	acct := n.rbudget.open(o.Source)
	cfg.Budget = acct
	onEnd, onPathFailed, onResume := cfg.OnEnd, cfg.OnPathFailed, cfg.OnResume
	cfg.OnEnd = func() {
		acct.close()
		onEnd()
	}
	cfg.OnPathFailed = func(p circuit.Path, err error) {
		onPathFailed(p, err)
		acct.park()
	}
	cfg.OnResume = func(ev circuit.ResumeEvent) {
		acct.unpark()
		onResume(ev)
	}
	r := circuit.NewResumableDest(tc, tc.LocalAddr(), tc.RemoteAddr(), n.resumeTable, o.Source, o.Service, cfg)
	acct.bind(r)
	rc := &resumableConn{Resumable: r, first: tc}
	if !n.resumables.bindWait(entry, rc.abort, r.Wait) {
		rc.abort() // the node closed meanwhile: the circuit is handed over reset
		r.Wait()
	}
	return rc
}

// resumePath hands an accepted FlagResume circuit to the circuit it names.
func (n *Node) resumePath(tc *trackedConn, o *circuit.Open) {
	if _, err := n.resumeTable.Resume(tc, o.Source, o.Service, time.Now().Add(n.cfg.Limits.HeaderTimeout)); err != nil {
		n.log.Debug("refused to resume a circuit", "source", o.Source, "service", o.Service, "err", err)
	}
}
