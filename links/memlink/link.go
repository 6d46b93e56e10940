package memlink

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// conn is what two link ends share.
type conn struct {
	// severed: the network no longer carries data between the ends.
	severed atomic.Bool
	buffer  int // stream buffer per direction
}

// endpoint is one end of a link; it implements links.Link.
type endpoint struct {
	conn         *conn
	t            *Transport
	peer         *endpoint
	peerName     string
	peerRole     links.Role
	peerFeatures uint64
	outbound     bool
	established  time.Time
	maxIncoming  int // streams the peer may have open towards us
	events       eventQueue
	done         chan struct{}

	mu       sync.Mutex
	wake     chan struct{} // closed on a change of acceptQ, incoming or down
	acceptQ  []*stream
	streams  map[*stream]struct{} // our ends of open streams
	incoming int                  // peer-opened streams in streams
	quality  links.Quality
	err      error // set when down
}

var _ links.Link = (*endpoint)(nil)

// newConn makes both ends of a link from a (dialler) to b. n.mu is held.
func newConn(a, b *Transport, q links.Quality, now time.Time) (local, remote *endpoint) {
	n := a.n
	c := &conn{buffer: n.cfg.StreamBuffer}
	pr := mkpair(a.name, b.name)
	n.linkNo[pr]++
	no, pa := n.linkNo[pr], n.paths[pr]
	mk := func(t, p *Transport, outbound bool) *endpoint {
		ep := &endpoint{
			conn: c, t: t, peerName: p.name, peerRole: p.cfg.Role, peerFeatures: p.cfg.Features,
			outbound: outbound, established: now, maxIncoming: t.cfg.MaxStreams,
			done: make(chan struct{}), streams: make(map[*stream]struct{}), quality: q,
		}
		ep.events.init(ep, t.cfg.Handler, n.cfg.ControlQueue, n.cfg.ControlBytes)
		if n.sched != nil {
			ep.events.sched, ep.events.path = n.sched, pa
			ep.events.key = orderKey{node: t.name, peer: p.name, link: no}
			ep.events.rng = pathRand(n.cfg.Seed, p.name, t.name, no)
		}
		return ep
	}
	local, remote = mk(a, b, true), mk(b, a, false)
	local.peer, remote.peer = remote, local
	return local, remote
}

func (ep *endpoint) Peer() string           { return ep.peerName }
func (ep *endpoint) PeerRole() links.Role   { return ep.peerRole }
func (ep *endpoint) PeerFeatures() uint64   { return ep.peerFeatures }
func (ep *endpoint) LocalAddr() net.Addr    { return Addr(ep.t.name) }
func (ep *endpoint) RemoteAddr() net.Addr   { return Addr(ep.peerName) }
func (ep *endpoint) Outbound() bool         { return ep.outbound }
func (ep *endpoint) Established() time.Time { return ep.established }
func (ep *endpoint) Done() <-chan struct{}  { return ep.done }
func (ep *endpoint) String() string         { return ep.t.name + "->" + ep.peerName }
func (ep *endpoint) Quality() links.Quality { ep.mu.Lock(); defer ep.mu.Unlock(); return ep.quality }
func (ep *endpoint) Err() error             { ep.mu.Lock(); defer ep.mu.Unlock(); return ep.err }
func (ep *endpoint) OpenStreams() int       { ep.mu.Lock(); defer ep.mu.Unlock(); return len(ep.streams) }
func (ep *endpoint) setQuality(q links.Quality) {
	ep.mu.Lock()
	ep.quality = q
	ep.mu.Unlock()
	ep.events.post(event{kind: evCost, quality: q})
}

// broadcast wakes everyone waiting on ep. ep.mu is held.
func (ep *endpoint) broadcast() {
	if ep.wake != nil {
		close(ep.wake)
		ep.wake = nil
	}
}

// waitChan returns a channel closed on the next change. ep.mu is held.
func (ep *endpoint) waitChan() chan struct{} {
	if ep.wake == nil {
		ep.wake = make(chan struct{})
	}
	return ep.wake
}

// SendRouting queues payload for the peer's Handler.Routing, which gets
// the same slice: the caller hands it over (links.Link.SendRouting). On a
// severed link the payload is silently lost, as on a real network.
func (ep *endpoint) SendRouting(payload []byte) error {
	if err := ep.Err(); err != nil {
		return fmt.Errorf("send routing to %s: %w", ep.peerName, err)
	}
	if len(payload) > links.MaxFrameSize { // as a QUIC link refuses it
		return fmt.Errorf("send routing to %s: payload of %d bytes (max %d): %w", ep.peerName, len(payload), links.MaxFrameSize, links.ErrFrameTooLarge)
	}
	if ep.conn.severed.Load() && ep.t.n.sched == nil {
		return nil // an ordered network drops it when due instead
	}
	ended, err := ep.peer.events.post(event{kind: evRouting, payload: payload})
	if ended {
		return nil // the peer end is going down; our end follows
	}
	return err
}

// OpenStream opens a stream, waiting while the peer already has
// MaxStreams of ours open. Like a QUIC stream it needs no round trip: on a
// cut link it opens, never reaches the peer and fails when the cut is
// detected; towards a dead peer it waits until its death is detected.
func (ep *endpoint) OpenStream(ctx context.Context) (links.Stream, error) {
	return ep.openStream(ctx)
}

// TryOpenStream is OpenStream failing at once, with an error wrapping
// links.ErrNoStreamCredit, while the peer has MaxStreams of ours open (or
// is dead and its end not yet told).
func (ep *endpoint) TryOpenStream() (links.Stream, error) {
	return ep.openStream(nil)
}

// openStream is OpenStream, or TryOpenStream when ctx is nil.
func (ep *endpoint) openStream(ctx context.Context) (links.Stream, error) {
	peer := ep.peer
	for {
		if err := ep.Err(); err != nil {
			return nil, fmt.Errorf("open stream to %s: %w", ep.peerName, err)
		}
		peer.mu.Lock()
		if peer.err == nil && peer.incoming < peer.maxIncoming {
			break
		}
		if ctx == nil {
			peer.mu.Unlock()
			return nil, fmt.Errorf("open stream to %s: peer allows %d open streams: %w", ep.peerName, peer.maxIncoming, links.ErrNoStreamCredit)
		}
		// A dead peer grants no stream credit: wait for our end to learn
		// of it, so that nothing piles up here meanwhile.
		var wait <-chan struct{}
		if peer.err == nil {
			wait = peer.waitChan()
		}
		peer.mu.Unlock()
		select {
		case <-wait:
		case <-ep.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("open stream to %s: peer allows %d open streams: %w", ep.peerName, peer.maxIncoming, ctx.Err())
		}
	}
	// peer.mu is held and the peer has room.
	local, remote := newStreamPair(ep, peer, ep.conn.buffer)
	peer.incoming++
	peer.streams[remote] = struct{}{}
	if !ep.conn.severed.Load() {
		peer.acceptQ = append(peer.acceptQ, remote)
		peer.broadcast()
	}
	peer.mu.Unlock()

	ep.mu.Lock()
	if err := ep.err; err != nil {
		ep.mu.Unlock()
		local.lose(fmt.Errorf("stream to %s: %w", ep.peerName, err))
		return nil, fmt.Errorf("open stream to %s: %w", ep.peerName, err)
	}
	ep.streams[local] = struct{}{}
	ep.mu.Unlock()
	return local, nil
}

// AcceptStream returns the next stream the peer opened.
func (ep *endpoint) AcceptStream(ctx context.Context) (links.Stream, error) {
	for {
		ep.mu.Lock()
		if len(ep.acceptQ) > 0 {
			s := ep.acceptQ[0]
			ep.acceptQ[0] = nil
			ep.acceptQ = ep.acceptQ[1:]
			ep.mu.Unlock()
			return s, nil
		}
		if ep.err != nil {
			err := ep.err
			ep.mu.Unlock()
			return nil, fmt.Errorf("accept stream from %s: %w", ep.peerName, err)
		}
		wait := ep.waitChan()
		ep.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("accept stream from %s: %w", ep.peerName, ctx.Err())
		}
	}
}

// release forgets s once our end of it is finished.
func (ep *endpoint) release(s *stream) {
	ep.mu.Lock()
	if _, ok := ep.streams[s]; ok {
		delete(ep.streams, s)
		if s.incoming {
			ep.incoming--
			ep.broadcast()
		}
	}
	ep.mu.Unlock()
}

// Close says goodbye: our end reports ErrClosed, the peer's ErrLinkLost,
// both with reason, and every stream on the link fails with ErrLinkLost.
func (ep *endpoint) Close(reason string) error {
	local := fmt.Errorf("link to %s closed: %s: %w", ep.peerName, reason, links.ErrClosed)
	if !ep.down(local, fmt.Errorf("link to %s closed locally: %s: %w", ep.peerName, reason, links.ErrLinkLost)) {
		return nil
	}
	if !ep.conn.severed.Load() {
		ep.peer.lose(fmt.Errorf("link closed by %s: %s: %w", ep.t.name, reason, links.ErrLinkLost))
	}
	return nil
}

// lose takes our end down because the link died.
func (ep *endpoint) lose(err error) { ep.down(err, err) }

// down takes our end down once: Err becomes err, streams fail with
// streamErr, and LinkDown is queued. It reports whether it did anything.
func (ep *endpoint) down(err, streamErr error) bool {
	ep.mu.Lock()
	if ep.err != nil {
		ep.mu.Unlock()
		return false
	}
	ep.err = err
	close(ep.done)
	streams := make([]*stream, 0, len(ep.streams))
	for s := range ep.streams {
		streams = append(streams, s)
	}
	ep.streams = make(map[*stream]struct{})
	ep.incoming = 0
	ep.acceptQ = nil
	ep.broadcast()
	ep.mu.Unlock()

	ep.t.forget(ep)
	for _, s := range streams {
		s.lose(streamErr)
	}
	ep.events.post(event{kind: evDown, err: err})
	return true
}
