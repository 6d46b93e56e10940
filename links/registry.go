package links

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/quic-go/quic-go"
)

// linkKey is what decides between duplicate links to one peer.
type linkKey struct {
	peer     string
	instance uint64 // the peer's transport instance
	nonce    uint64 // the dial nonce
	outbound bool   // this node dialled
}

// pending is a link whose handshake passed verification and that is not
// yet adopted.
type pending struct {
	key  linkKey
	spki []byte // the public key of the peer's certificate
	done chan struct{}
}

// pend records a verified handshake in progress with the peer of conn.
func (t *QUICTransport) pend(k linkKey, conn *quic.Conn) *pending {
	p := &pending{key: k, spki: peerSPKI(conn), done: make(chan struct{})}
	t.mu.Lock()
	t.pending[k.peer] = append(t.pending[k.peer], p)
	t.mu.Unlock()
	return p
}

// pendDial is pend for a link this node dialled, unless another link this
// node dialled to the same peer instance is alive or pending: then it
// returns nil and the caller abandons its dial before sending ready, so
// that the peer never adopts it. Two dials from one node (a redial loop
// and an explicit dial) thus make one link, and a later one never replaces
// a link that already carries circuits.
func (t *QUICTransport) pendDial(k linkKey, conn *quic.Conn) *pending {
	t.mu.Lock()
	defer t.mu.Unlock()
	same := func(o linkKey) bool { return o.outbound && o.instance == k.instance }
	if l := t.links[k.peer]; l != nil && same(l.key) && l.alive() {
		return nil
	}
	for _, q := range t.pending[k.peer] {
		if same(q.key) {
			return nil
		}
	}
	p := &pending{key: k, spki: peerSPKI(conn), done: make(chan struct{})}
	t.pending[k.peer] = append(t.pending[k.peer], p)
	return p
}

// release ends a pending handshake (adopted or failed).
func (t *QUICTransport) release(p *pending) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.pending[p.key.peer]
	for i, q := range ps {
		if q == p {
			ps = append(ps[:i], ps[i+1:]...)
			close(p.done)
			break
		}
	}
	if len(ps) == 0 {
		delete(t.pending, p.key.peer)
	} else {
		t.pending[p.key.peer] = ps
	}
}

// attempt records a handshake in progress with addr, whose peer is not
// known yet; the returned func ends it.
func (t *QUICTransport) attempt(addr net.Addr, outbound bool) (done func()) {
	d := &dialAttempt{addr: addr, outbound: outbound, done: make(chan struct{})}
	t.mu.Lock()
	t.dials[d] = struct{}{}
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		delete(t.dials, d)
		t.mu.Unlock()
		close(d.done)
	}
}

type dialAttempt struct {
	addr     net.Addr
	outbound bool
	done     chan struct{}
}

// awaitPreferred waits (bounded by the handshake timeout) while another
// handshake with the same peer instance that would win over l is in
// progress, so that a simultaneous dial settles on the survivor without a
// LinkUp for the loser. Handshakes of two instances do not wait on each
// other (each would win over the other, and both waited out the handshake
// timeout): adopt settles them. A link that would lose to one in the other direction also
// waits for handshakes in that direction with the same address whose peer
// is not known yet (one socket serves both directions, so the same address
// is the same node).
func (t *QUICTransport) awaitPreferred(l *quicLink) {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.HandshakeTimeout)
	defer cancel()
	p := l.pend
	for {
		var wait chan struct{}
		t.mu.Lock()
		for _, q := range t.pending[p.key.peer] {
			if q != p && q.key.instance == p.key.instance && t.prefer(q.key, p.key) {
				wait = q.done
				break
			}
		}
		// Links dialled by the smaller name win: the other direction wins
		// if it is dialled by the smaller name.
		otherWins := p.key.outbound == (t.name() > p.key.peer)
		if wait == nil && otherWins {
			for d := range t.dials {
				if d.outbound != p.key.outbound && sameAddr(d.addr, l.conn.RemoteAddr()) {
					wait = d.done
					break
				}
			}
		}
		t.mu.Unlock()
		if wait == nil {
			return
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return
		}
	}
}

// adopt registers a handshaken link, resolving duplicates, and starts it.
// It returns the surviving link to the peer (l or an existing one), or an
// error when the transport is closed or l died before it could be adopted
// with no other link to the peer.
func (t *QUICTransport) adopt(l *quicLink) (*quicLink, error) {
	defer t.release(l.pend)
	t.awaitPreferred(l)
	peer := l.hello.Node
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		_ = l.conn.CloseWithError(codeGoodbye, "transport closing")
		return nil, fmt.Errorf("transport: %w", ErrClosed)
	}
	prev := t.links[peer]
	old := prev
	if old != nil && !old.alive() {
		old = nil // going down; its watcher reports it
	}
	if !l.alive() {
		t.mu.Unlock()
		if old != nil {
			return old, nil
		}
		return nil, t.handshakeErr(l.conn, "link closed before it was up", context.Cause(l.conn.Context()))
	}
	if old != nil && !samePeerKey(old.conn, l.conn) {
		// A second node of this name, whose duplicate-name check ran
		// before the first one's link was registered (checkDuplicateName
		// waits for pending handshakes, but not between its look and
		// pend): the established link wins, as there.
		t.mu.Unlock()
		return nil, refuse(l.conn, t.duplicateName(old, l.hello.Node))
	}
	if old != nil && !t.prefer(l.key, old.key) {
		t.mu.Unlock()
		t.cfg.Logger.Debug("closing duplicate link", "peer", peer, "outbound", l.outbound)
		_ = l.conn.CloseWithError(codeDuplicate, "duplicate link to "+t.name())
		return old, nil
	}
	t.links[peer] = l
	t.mu.Unlock()
	if prev != nil {
		// The link l replaces may have been registered by an adoption
		// that has not delivered its LinkUp yet: wait for it (it follows
		// registration without blocking), so that the handler hears the
		// peer's links come up in the order they were registered and
		// never a LinkUp of a link after that of its replacement.
		<-prev.started
	}
	t.lifeLog.At(slog.LevelInfo, "up "+peer, "link up", "peer", peer, "remote", l.conn.RemoteAddr().String(), "outbound", l.outbound,
		"role", l.hello.Role, "rtt", l.conn.ConnectionStats().SmoothedRTT.Round(time.Microsecond))
	// The new link is up (its LinkUp delivered) before the old one goes
	// down, so that the handler always holds a live link to the peer: a
	// circuit open that fails on the old link finds the new one.
	l.start()
	if old != nil {
		reason := "duplicate link"
		if old.key.instance != l.key.instance {
			reason = "replaced by a link to the restarted peer"
		}
		t.cfg.Logger.Debug("replacing link", "peer", peer, "reason", reason)
		old.down(old.connLost(errReplaced(reason)), codeDuplicate, reason)
	}
	return l, nil
}

// prefer reports whether link key a wins over link key b to the same peer
// (docs/PROTOCOL.md, "Duplicate links"): a peer that restarted wins;
// otherwise the link dialled by the smaller node name, and then the smaller
// dial nonce. Two links of one instance are taken for two dials of one
// node: checkDuplicateName refuses a newcomer that sends the established
// link's instance with a certificate of another key.
func (t *QUICTransport) prefer(a, b linkKey) bool {
	if a.instance != b.instance {
		return true
	}
	da, db := t.dialler(a), t.dialler(b)
	if da != db {
		return da < db
	}
	return a.nonce < b.nonce
}

func (t *QUICTransport) dialler(k linkKey) string {
	if k.outbound {
		return t.name()
	}
	return k.peer
}

// unregister removes l from the table if it is the current link to its peer.
func (t *QUICTransport) unregister(l *quicLink) {
	t.mu.Lock()
	if t.links[l.hello.Node] == l {
		delete(t.links, l.hello.Node)
	}
	t.mu.Unlock()
}

type errReplaced string

func (e errReplaced) Error() string { return string(e) }
