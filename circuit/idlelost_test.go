package circuit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/quic-go/quic-go"

	"github.com/circuitmesh/circuitmesh/links"
)

// idleLost is the error the links package's QUIC streams return once QUIC
// ended their connection at its idle timeout (a peer that went silent,
// as a crashed relay does when the liveness detector, widened on a
// loaded machine, has not declared it dead first): links.ErrLinkLost
// with quic-go's error in the chain, which is a net.Error whose Timeout()
// is true.
var idleLost = fmt.Errorf("stream: %w: %w", links.ErrLinkLost, &quic.IdleTimeoutError{})

// idleEndedStream is a circuit's first stream whose link QUIC ends at its idle
// timeout once lose is called: every Read and Write then fails with
// idleLost, those in progress too.
type idleEndedStream struct {
	links.Stream
	lost atomic.Bool
}

func (s *idleEndedStream) lose() {
	s.lost.Store(true)
	s.Stream.Reset(CloseLinkLost) // wakes a Read or Write in progress
}

func (s *idleEndedStream) Read(p []byte) (int, error) { return s.do(s.Stream.Read, p) }

func (s *idleEndedStream) Write(p []byte) (int, error) { return s.do(s.Stream.Write, p) }

// do runs op on p, failing with QUIC's idle-timeout error once the
// stream is lost.
func (s *idleEndedStream) do(op func([]byte) (int, error), p []byte) (int, error) {
	if s.lost.Load() {
		return 0, idleLost
	}
	n, err := op(p)
	if err != nil && s.lost.Load() {
		err = idleLost
	}
	return n, err
}

// TestConnLinkIdleTimeoutIsLinkLost: a circuit whose first link QUIC
// ended at its idle timeout fails its Read and Write with
// links.ErrLinkLost, not os.ErrDeadlineExceeded: no deadline was set, and
// the caller (the resumable layer among others) must see a lost link.
// Before, the idle timeout's Timeout() made it a deadline error.
func TestConnLinkIdleTimeoutIsLinkLost(t *testing.T) {
	p := newPath(t, 0, nil)
	var s *idleEndedStream
	c, err := p.connectWith(basicOpen(), nil, func(ctx context.Context, ls links.Stream) (*Conn, error) {
		s = &idleEndedStream{Stream: ls}
		return Dial(ctx, s, basicOpen(), Addr{Node: "s", Service: "echo"})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.stop()
	s.lose()
	_, rerr := c.caller.Read(make([]byte, 1))
	_, werr := c.caller.Write([]byte("x"))
	for op, err := range map[string]error{"Read": rerr, "Write": werr} {
		if !errors.Is(err, links.ErrLinkLost) || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s after the link's idle timeout: %v, want links.ErrLinkLost", op, err)
		}
	}
}

// TestResumeAfterLinkIdleTimeout: a resumable circuit whose path's link
// QUIC ended at its idle timeout resumes on a new path, and the
// exchange goes on. Before, the source took the idle timeout for a
// deadline, which is not resumable, and ended the circuit: in a 3×3 mesh
// under load (TestResumeGridFiveRelayCrashes) a relay's crash then ended
// the transfer instead of moving it to another path.
func TestResumeAfterLinkIdleTimeout(t *testing.T) {
	g := newResumeRig(t)
	var s *idleEndedStream
	g.source = func(ls links.Stream) links.Stream {
		s = &idleEndedStream{Stream: ls}
		return s
	}
	_, src, dst := g.pair(ResumeConfig{}, ResumeConfig{})
	served := serveEcho(dst)
	echoByte(t, src, 'a')
	waitRegistered(t, g.table, 1)
	s.lose()
	echoByte(t, src, 'b')
	if n := src.Resumes(); n < 1 {
		t.Errorf("source resumed %d times, want at least once", n)
	}
	endEcho(t, src, served)
}
