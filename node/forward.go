package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links/ratelog"
)

// tcpDialTimeout bounds the dial to a local TCP service behind Expose.
const tcpDialTimeout = 10 * time.Second

// Expose publishes service on this node and connects every circuit that
// arrives for it to the TCP service at tcpAddr, copying bytes both ways
// with half-close (a circuit's CloseWrite becomes a TCP FIN and back). A
// failure on either side aborts the other: the circuit is reset, the TCP
// connection is closed with RST. A circuit whose TCP service cannot be
// reached is reset with circuit.CloseUnavailable, and logged at most once
// a minute per exposed service, with the count of such circuits (a member
// of the mesh may open them as fast as it likes).
//
// stop withdraws the service, closes every connection it spliced and waits
// for its goroutines. Closing the node also ends them.
func (n *Node) Expose(service, tcpAddr string) (stop func() error, err error) {
	if _, _, err := net.SplitHostPort(tcpAddr); err != nil {
		return nil, fmt.Errorf("expose %q: TCP address %q: %w", service, tcpAddr, err)
	}
	ln, err := n.Listen(service)
	if err != nil {
		return nil, fmt.Errorf("expose %q on %s: %w", service, tcpAddr, err)
	}
	p := newPump(ln, n.cfg.Logger.With("expose", service, "target", tcpAddr))
	go p.run(func(ctx context.Context, _ net.Conn) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, tcpDialTimeout)
		defer cancel()
		var d net.Dialer
		return d.DialContext(ctx, "tcp", tcpAddr)
	})
	return p.stop, nil
}

// Forward listens on the TCP address listenAddr and tunnels every accepted
// connection over a fresh circuit to service on peer, with half-close. It
// returns the address it listens on (useful with port 0).
//
// The circuit is opened early (DialOptions.Early): the client's first
// bytes travel with the open, without a round trip first. A connection
// whose circuit cannot be opened is aborted (TCP RST): at once, with the
// reason logged (one line a minute per forward, with the count of such
// connections), when this node has no route; when the refusal arrives
// (no such service), on its first read or write. So is one whose circuit
// ends in error (reset, link lost), so that the client never mistakes a
// broken transfer for a complete one. Half-close maps to FIN
// both ways. stop closes the listener and
// every connection and waits for the goroutines; closing the node does the
// same. It fails with ErrNotStarted before Start has succeeded and with
// ErrClosed once Close has begun.
func (n *Node) Forward(listenAddr, peer, service string) (net.Addr, func() error, error) {
	if !n.running() {
		return nil, nil, fmt.Errorf("forward %s to %s/%s: %w", listenAddr, peer, service, n.notRunning())
	}
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("forward %s to %s/%s: %w", listenAddr, peer, service, err)
	}
	p := newPump(ln, n.cfg.Logger.With("forward", ln.Addr().String(), "peer", peer, "service", service))
	go p.run(func(ctx context.Context, _ net.Conn) (net.Conn, error) {
		// Early: the client's first bytes travel with the open, and a
		// refusal surfaces on the circuit's first Read or Write (the
		// TCP connection is then reset).
		return n.DialWith(ctx, peer, service, DialOptions{Early: true})
	})
	go func() { // the TCP listener is ours: stop accepting when the node drains, end it when it closes
		select {
		case <-n.draining:
			p.stopAccepting()
		case <-p.ctx.Done():
			return
		}
		select {
		case <-n.closed:
			p.stop()
		case <-p.ctx.Done():
		}
	}()
	return ln.Addr(), p.stop, nil
}

// pump accepts connections from a listener, dials a partner for each and
// splices the two. It tracks every connection so stop can end them all.
type pump struct {
	ln     net.Listener
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	conns map[net.Conn]struct{}

	// dropLog writes at most one line a minute about the connections
	// dropped because the other side could not be reached, with dropped
	// (their count since the pump started): behind Expose each is a
	// circuit a member of the mesh opened, as fast as it likes. And one
	// about failed accepts (out of file descriptors): each connection
	// that succeeds between them resets the backoff, so local clients
	// connecting in a loop would write a line for each.
	dropLog *ratelog.Log
	dropped atomic.Uint64

	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
	draining atomic.Bool // the listener was closed to drain: keep the connections
}

func newPump(ln net.Listener, log *slog.Logger) *pump {
	ctx, cancel := context.WithCancel(context.Background())
	p := &pump{ln: ln, log: log, ctx: ctx, cancel: cancel, conns: make(map[net.Conn]struct{}),
		dropLog: ratelog.New(log, time.Minute, 2)}
	p.wg.Add(1) // the accept loop
	return p
}

// run is the accept loop; dial opens the partner of each accepted conn.
func (p *pump) run(dial func(context.Context, net.Conn) (net.Conn, error)) {
	defer p.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if p.draining.Load() && p.ctx.Err() == nil {
				return // draining: open connections carry on until stop
			}
			if p.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				p.cancel() // the listener is gone (stop, or the node closed)
				p.closeAll()
				return
			}
			p.dropLog.Warn("accept", "accept failed; retrying", "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-p.ctx.Done():
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go p.serve(c, dial)
	}
}

func (p *pump) serve(c net.Conn, dial func(context.Context, net.Conn) (net.Conn, error)) {
	defer p.wg.Done()
	defer p.untrack(c)
	other, err := dial(p.ctx, c)
	if err != nil {
		if p.ctx.Err() == nil {
			total := p.dropped.Add(1)
			p.dropLog.Warn("dropped", "connection dropped: cannot reach the other side",
				"remote", c.RemoteAddr().String(), "err", err, "dropped_total", total)
		}
		abort(c, circuit.CloseUnavailable)
		return
	}
	if !p.track(other) {
		other.Close()
		c.Close()
		return
	}
	defer p.untrack(other)
	splice(c, other)
}

// track registers c; it reports false once the pump is stopping.
func (p *pump) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *pump) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// closeAll cuts every connection still open: a TCP peer reads a reset
// and a circuit's far end a cancelled one, never a clean end of a
// transfer cut short (a Close sent the TCP side FIN, and an unforward in
// the middle of a download gave its client io.EOF:
// TestUnforwardMidDownloadResetsTheClient).
func (p *pump) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		abort(c, circuit.CloseCancelled)
	}
}

// stopAccepting closes the listener and leaves open connections alone.
func (p *pump) stopAccepting() {
	p.draining.Store(true)
	_ = p.ln.Close()
}

func (p *pump) stop() error {
	p.stopOnce.Do(func() {
		p.mu.Lock()
		p.cancel()
		p.mu.Unlock()
		if err := p.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			p.stopErr = fmt.Errorf("close %s: %w", p.ln.Addr(), err)
		}
		p.closeAll()
		p.wg.Wait()
	})
	return p.stopErr
}

// splice copies a→b and b→a until both directions end, passing EOF on as
// a half-close. An error in either direction (a reset) aborts both, and
// so does a circuit that ends in failure while both copies wait on the
// other side (a TCP peer that neither reads nor writes): before, a
// circuit the resume budget reset kept its TCP connection, two goroutines
// and its unread bytes, no longer counted, for as long as the peer hung
// (TestExposeToHungServiceClosesResetCircuits).
func splice(a, b net.Conn) {
	// ended[i]: the copy into a (i 0) or b (1) passed its end on.
	var ended [2]atomic.Bool
	done := make(chan struct{})
	go func() {
		ended[1].Store(copyHalf(b, a))
		close(done)
	}()
	stop := abortOnFailure(a, b, &ended)
	ended[0].Store(copyHalf(a, b))
	<-done
	stop()
	a.Close()
	b.Close()
}

// circuitEnd is a circuit that reports its end (circuit.Resumable), or
// its far end's reset or its link's loss (circuit.Conn: before, a plain
// circuit's reset went unnoticed as a resumable one's did,
// TestForwardClosesHungClientOfResetPlainCircuit, and so did the loss of
// its link, TestForwardClosesHungClientWhenPlainCircuitLosesItsLink).
type circuitEnd interface {
	Done() <-chan struct{}
	Err() error
}

// abortOnFailure aborts both a and b once whichever of them is a
// circuitEnd ends in failure; stop ends the watch and waits for it. A
// connection whose copy into it already passed its end on (ended, as in
// splice) is closed, not aborted: its peer has all the data and the FIN
// and reads them to the end, where a reset would drop what it had not
// read yet (TestForwardDeliversCompleteDownloadWhenPlainCircuitLosesItsLink).
func abortOnFailure(a, b net.Conn, ended *[2]atomic.Bool) (stop func()) {
	e, ok := a.(circuitEnd)
	if !ok {
		if e, ok = b.(circuitEnd); !ok {
			return func() {}
		}
	}
	quit, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-e.Done():
			if e.Err() != nil {
				for i, c := range []net.Conn{a, b} {
					if _, circ := c.(circuitEnd); ended[i].Load() && !circ {
						c.Close()
						continue
					}
					abort(c, circuit.CloseCancelled)
				}
			}
		case <-quit:
		}
	}()
	return func() {
		close(quit)
		<-watched
	}
}

// copyHalf copies src to dst and then half-closes dst; if the copy fails
// it aborts both. It reports whether dst got the whole copy and its end.
func copyHalf(dst, src net.Conn) bool {
	if _, err := io.Copy(dst, src); err != nil {
		abort(dst, circuit.CloseCancelled)
		abort(src, circuit.CloseCancelled)
		return false
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return true
		}
	}
	dst.Close()
	return false
}

// abort ends c as an error its peer cannot mistake for a clean end: a TCP
// connection with RST (SO_LINGER 0), a circuit with a reset carrying code.
func abort(c net.Conn, code uint64) {
	switch c := c.(type) {
	case *net.TCPConn:
		_ = c.SetLinger(0)
	case interface{ Reset(uint64) }:
		c.Reset(code)
	}
	c.Close()
}
