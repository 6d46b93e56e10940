package circuit

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// TestWriteAfterPeerCloseSameOnEveryCircuit: the other end closes the
// circuit cleanly; this end reads to io.EOF and writes again. The Write
// fails alike on a plain circuit, clear or sealed, and on a resumable
// one: a *net.OpError wrapping a *ResetError from the other side with
// reason CloseNormal, which matches net.ErrClosed and
// links.ErrStreamReset. Before, a plain circuit's Write failed with the
// reset, which did not match net.ErrClosed, and a resumable circuit's
// with "the other end closed the circuit", which matched net.ErrClosed
// and neither *ResetError nor links.ErrStreamReset.
func TestWriteAfterPeerCloseSameOnEveryCircuit(t *testing.T) {
	g := newResumeRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, sealed, err := g.connect(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	clear := mustConnect(t, newPath(t, 1, nil), basicOpen(), false)
	defer clear.stop()
	src, dst := g.defaultPair(t)
	for _, end := range []struct {
		name   string
		caller io.ReadWriter
		dest   io.Closer
	}{
		{"plain", clear.caller, clear.dest},
		{"sealed", sealed.caller, sealed.dest},
		{"resumable", src, dst},
	} {
		if err := end.dest.Close(); err != nil {
			t.Fatalf("%s: close: %v", end.name, err)
		}
		if _, err := io.ReadAll(end.caller); err != nil {
			t.Fatalf("%s: read to the end: %v", end.name, err)
		}
		// The other end's stop-sending may reach this end after the
		// first Writes: write until one fails.
		deadline := time.Now().Add(time.Minute)
		for err == nil && time.Now().Before(deadline) {
			if _, err = end.caller.Write([]byte("x")); err == nil {
				time.Sleep(5 * time.Millisecond)
			}
		}
		var oe *net.OpError
		var re *ResetError
		switch {
		case err == nil:
			t.Errorf("%s: Writes after the other end closed still succeed after a minute", end.name)
		case !errors.As(err, &oe) || !errors.As(err, &re) || !re.Remote || re.Code.Reason() != CloseNormal:
			t.Errorf("%s: Write after the other end closed: %v (%T), want a *net.OpError wrapping a *ResetError from the other side with CloseNormal", end.name, err, err)
		case !errors.Is(err, net.ErrClosed) || !errors.Is(err, links.ErrStreamReset):
			t.Errorf("%s: Write after the other end closed: %v; net.ErrClosed %v, links.ErrStreamReset %v, want both",
				end.name, err, errors.Is(err, net.ErrClosed), errors.Is(err, links.ErrStreamReset))
		}
		err = nil
	}
}
