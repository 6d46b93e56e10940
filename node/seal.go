package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/links"
)

// E2E selects end-to-end circuit security. The zero value is on.
type E2E int

const (
	// E2EOn seals every circuit this node opens between its two ends and
	// accepts only sealed circuits (the default).
	E2EOn E2E = 0
	// E2EOff opens circuits in the clear and accepts unsealed ones, so every
	// router on a path can read and change them: only for meshes whose
	// routers are all trusted. Sealed circuits are still accepted.
	E2EOff E2E = 1
)

func (e E2E) String() string {
	if e == E2EOff {
		return "off"
	}
	return "on"
}

// KeyLookup gives the verified key record of a node, so that the first
// circuit to it can use the one-message handshake. Records it returns must
// have been verified against the node's certificate (seal.KeyRecord.Verify).
type KeyLookup interface {
	LookupKey(node string) (*seal.KeyRecord, bool)
}

// keyBook caches the key records learned from completed handshakes,
// bounded by Limits.MaxRoutes entries (an arbitrary one is dropped when
// full), in front of Config.Keys.
type keyBook struct {
	mu    sync.Mutex
	max   int
	recs  map[string]*seal.KeyRecord
	extra KeyLookup
	// learning holds, per destination, the full handshake in flight that
	// will learn its record (closed when that dial ends); one entry per
	// dialling destination, removed when the dial ends.
	learning map[string]chan struct{}
}

func newKeyBook(max int, extra KeyLookup) *keyBook {
	return &keyBook{max: max, recs: make(map[string]*seal.KeyRecord), extra: extra, learning: make(map[string]chan struct{})}
}

// learn is for a dial to node whose record is unknown: it returns done
// (non-nil) when this dial is to take the full handshake and must call it
// once the dial ended, or wait, closed when the full handshake in flight
// ended, after which the record may be known.
func (b *keyBook) learn(node string) (done func(), wait <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ch, ok := b.learning[node]; ok {
		return nil, ch
	}
	ch := make(chan struct{})
	b.learning[node] = ch
	return func() {
		b.mu.Lock()
		delete(b.learning, node)
		b.mu.Unlock()
		close(ch)
	}, nil
}

// LookupKey returns a record for node still valid now.
func (b *keyBook) LookupKey(node string) (*seal.KeyRecord, bool) {
	b.mu.Lock()
	r, ok := b.recs[node]
	if ok && !r.Valid(time.Now()) {
		delete(b.recs, node)
		ok = false
	}
	b.mu.Unlock()
	if !ok && b.extra != nil {
		r, ok = b.extra.LookupKey(node)
		ok = ok && r != nil && r.Node == node && r.Valid(time.Now())
	}
	return r, ok
}

func (b *keyBook) store(r *seal.KeyRecord) {
	if r == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.recs[r.Node]; !ok && len(b.recs) >= b.max {
		for k := range b.recs {
			delete(b.recs, k)
			break
		}
	}
	b.recs[r.Node] = r
}

func (b *keyBook) forget(node string) {
	b.mu.Lock()
	delete(b.recs, node)
	b.mu.Unlock()
}

// awaitKey is for a sealed, not early, dial to dest: concurrent dials to
// a node whose record is unknown take one full handshake between them, the
// others wait for it here and open in one message. A burst of full
// handshakes would each need its third message through the path within
// the destination's HeaderTimeout, behind the traffic of the circuits
// opened before it. It returns done (non-nil) when this dial is to take
// the full handshake and must call it once the dial ended.
//
// It runs before the dial opens its stream: in QUIC the first write on a
// later stream makes the earlier ones visible to the next hop, which would
// hold an open slot of the link for each empty stream waiting here.
func (n *Node) awaitKey(ctx context.Context, o *circuit.Open) (done func(), err error) {
	for {
		if _, ok := n.keyBook.LookupKey(o.Dest); ok {
			return nil, nil
		}
		done, wait := n.keyBook.learn(o.Dest)
		if done != nil {
			return done, nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for another dial's handshake with %s: %w", o.Dest, ctx.Err())
		}
	}
}

// openSealed opens a sealed circuit on s: resuming the session with the
// destination when the node holds one, else with the one-message handshake
// when the destination's key is known, else with the full one. A
// destination that cannot take the first two (session unknown or expired,
// stale key, replay register) refuses with code Retry: the session or the
// key is forgotten and the open is made again on a new stream of l with
// the next handshake down (at most twice): for a Dial here, for an early
// one by the conn itself when the refusal arrives (circuit.Security.Reopen;
// after a flight with early bytes it names the refused flights, and fails
// with circuit.ErrForgedRetry when the destination took one, which a
// relay's forged Retry would otherwise have delivered twice).
func (n *Node) openSealed(ctx context.Context, l links.Link, s links.Stream, o *circuit.Open, opt DialOptions) (*circuit.Conn, error) {
	local := circuit.Addr{Node: n.cfg.Name, Service: o.Service}
	sec := circuit.Security{Keys: n.seal.Load(), OnPeer: n.keyBook.store,
		OnRetry: func() { n.keyBook.forget(o.Dest) }}
	if r, ok := n.keyBook.LookupKey(o.Dest); ok {
		sec.Peer = r
	}
	if opt.Early {
		// Refused with Retry, the early conn opens again on l by itself,
		// its first bytes with it: the caller already wrote them.
		// Its wait for a stream ends at DialTimeout, or when the conn is
		// closed or reset (ctx); a Read or Write waiting for the
		// handshake meanwhile returns at its own deadline.
		sec.Reopen = func(ctx context.Context) (links.Stream, error) {
			if n.cfg.hooks != nil && n.cfg.hooks.beforeRetry != nil {
				n.cfg.hooks.beforeRetry()
			}
			ctx, cancel := context.WithTimeout(ctx, n.cfg.DialTimeout)
			defer cancel()
			return openStream(ctx, l)
		}
		return circuit.DialEarlySecure(s, o, local, sec)
	}
	resumed := sec.Keys.Resumable(o.Dest)
	c, err := circuit.DialSecure(ctx, s, o, local, sec)
	for try := 0; try < 2 && err != nil && errIsRetry(err); try++ {
		if !resumed {
			sec.Peer = nil // refused: the key (which Config.Keys may still give)
		}
		// The next handshake down: a ticket another open stored meanwhile
		// may be one the destination has forgotten too.
		resumed, sec.Fresh = false, true
		if n.cfg.hooks != nil && n.cfg.hooks.beforeRetry != nil {
			n.cfg.hooks.beforeRetry()
		}
		if s, err = openStream(ctx, l); err != nil {
			return nil, err
		}
		c, err = circuit.DialSecure(ctx, s, o, local, sec)
	}
	return c, err
}

// respond runs the destination's side of the first handshake message of
// a sealed open on s. On failure it returns the refusal code to answer.
// A full handshake's first message from neighbour from is answered only
// within the budget (Limits.FullHandshakes), before any cryptography; a
// one-message first message that fails spends the node's budget and one
// of its own by link (limiter.endOneMessage). One that succeeds is
// answered within its source's budget (Limits.OneMessageHandshakesPerSource),
// and a source that used it up is refused before any cryptography.
// A resume open of a source whose budget of re-sent bytes is in debt is
// refused once a resumed or one-message handshake proved the source (and
// counted), or on its claim before a full one.
//
// The first message must arrive within HeaderTimeout of its read
// starting; a full handshake's third message within HeaderTimeout of the
// reply's write (circuit.AcceptSecureWithin, dispatch).
func (n *Node) respond(s links.Stream, o *circuit.Open, from string) (*seal.Responder, circuit.Code, error) {
	s.SetReadDeadline(time.Now().Add(n.cfg.Limits.HeaderTimeout))
	msg, err := circuit.ReadHandshake(s)
	if err != nil {
		return nil, circuit.Policy, err
	}
	resume := o.Flags&circuit.FlagResume != 0
	if seal.FullFirst(msg) {
		// A full handshake proves the source only with its third message,
		// after three X25519 operations here: a resume open of a source
		// whose budget of re-sent bytes is in debt is refused on its
		// claim, before any cryptography, and not counted as the source's.
		if resume {
			if debt, why := n.rbudget.resendDebt(o.Source, time.Now()); debt {
				n.limits.noteOverloaded(why)
				return nil, circuit.Overloaded, errors.New(why)
			}
		}
		if ok, why := n.limits.tryFullHandshake(from, time.Now()); !ok {
			n.limits.noteOverloaded(why)
			return nil, circuit.Overloaded, errors.New(why)
		}
	}
	if seal.OneMessageFirst(msg) {
		if spent, why := n.limits.oneMessageSpent(o.Source, time.Now()); spent {
			n.limits.noteOverloaded(why)
			return nil, circuit.Overloaded, errors.New(why)
		}
		// While the link's budget of failed one-message handshakes is
		// spent, its one-message opens take the full handshake instead,
		// whose first message costs nothing to refuse and whose budget
		// is taken before any cryptography: the sources behind an honest
		// relay whose other entries a forger uses lose a round trip, not
		// their circuits.
		if spent, why := n.limits.holdOneMessage(from, n.cfg.Limits.HeaderTimeout); spent {
			n.limits.floods.Warn("failed one-message", "answering one-message end-to-end handshakes retry before any cryptography (counts since start)",
				"last_reason", why, "retried_total", n.limits.ikRetried.Add(1))
			return nil, circuit.Retry, fmt.Errorf("%w: %s", seal.ErrRetry, why)
		}
	}
	r, err := n.seal.Load().Respond(seal.Prologue(o.Dest, o.Source, o.Service, uint16(o.Flags)), msg, o.Source, n.strikes, time.Now())
	if err == nil && r.Resumed() && n.cfg.hooks != nil && n.cfg.hooks.forgetSessions {
		err = fmt.Errorf("%w: session forgotten (test hook)", seal.ErrRetry)
	}
	// A one-message first message that failed cost a Diffie-Hellman
	// operation too: it spends the node's budget of full handshakes, or
	// anyone could send garbage IK messages past it, and a link's budget
	// of its own (a relay cannot tell it from a good one).
	if seal.OneMessageFirst(msg) {
		if err != nil {
			n.limits.ikFailed.Add(1)
		}
		if ok, why := n.limits.endOneMessage(from, err != nil, time.Now()); !ok {
			n.limits.noteOverloaded(why)
			return nil, circuit.Overloaded, errors.New(why)
		}
	}
	// A one-message handshake that succeeded spends its source's budget
	// before the reply's X25519 operations (e, ee, se).
	if err == nil && !r.Resumed() && !r.Full() {
		if ok, why := n.limits.tryOneMessage(o.Source, time.Now()); !ok {
			n.limits.noteOverloaded(why)
			return nil, circuit.Overloaded, errors.New(why)
		}
		// Early data stamped within the replay window of this node's
		// start may have been taken by the process before (the register
		// starts empty): it is not taken, and a source that keeps it
		// (FlagResendsEarly) sends it again once the handshake completed,
		// which a replayer cannot do. A source that predates the flag
		// does not: its early data is taken as before.
		if len(r.Early()) > 0 && o.Flags&circuit.FlagResendsEarly != 0 && n.strikes.MayPredate(r.Stamp()) {
			if !r.DropEarly(time.Now()) {
				err = fmt.Errorf("%w: early data that may predate this node's start, and no ticket to say it was not taken", seal.ErrRetry)
			} else {
				n.earlyDropped.Add(1)
			}
		}
	}
	// A resumed or one-message handshake that succeeded proved the
	// source: a resume open of one whose budget of re-sent bytes
	// (Limits.ResumeResendPerSource) is in debt is refused and counted,
	// before the reply's cryptography and before anything is sent again.
	if err == nil && resume && !r.Full() {
		if debt, why := n.rbudget.resendDebt(o.Source, time.Now()); debt {
			n.rbudget.refusedResend()
			n.limits.noteOverloaded(why)
			return nil, circuit.Overloaded, errors.New(why)
		}
	}
	// Taken: an open made again that names this flight as refused with
	// Retry (circuit.Security.Reopen) was refused by a relay, not by
	// this node, and is not taken twice. A flight this node answered
	// with Retry itself (above) is not marked. One such open that named
	// this flight since it was read went ahead instead: the flight is
	// refused as a replay (a relay kept it and sends it on late).
	if err == nil && !n.strikes.Take(r.Ephemeral()) {
		err = fmt.Errorf("%w: %w: a full handshake named this first message abandoned", seal.ErrRetry, seal.ErrReplay)
	}
	switch {
	case errIsRetry(err):
		return nil, circuit.Retry, err
	case err != nil:
		total := n.limits.e2eFailed.Add(1)
		n.limits.badOpenLog.Debug("e2e:"+from, "end-to-end handshake failed", "peer", from, "source", o.Source, "service", o.Service, "err", err, "failed_total", total)
		return nil, circuit.Policy, err
	}
	return r, circuit.Accepted, nil
}

func errIsRetry(err error) bool { return circuit.IsRetry(err) }
