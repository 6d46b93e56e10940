package links

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// TestDialRefusedByBusyNodeIsTyped: a node whose handshake gate refuses a
// dial at its first packet (here the prefix's rate: the dialler links and
// closes again and again, as a redial loop after a flapping link does)
// sends QUIC CONNECTION_REFUSED. (The test lowers v's prefix rate to 2
// handshakes, then one every 10 s, so that the refusal comes whatever the
// load: at the default 32 a second, a loaded machine cycled 649 links in
// 20 s without one.) The dialler's error wraps ErrBusy, not
// ErrRefused (no verdict on its certificate), and does not match
// ErrClosed (net.ErrClosed), documented as "the transport or link was
// closed locally", which node.ErrClosed ("the node is closed") also is;
// errors.As still finds quic-go's transport error. Before, the dialler got
// quic-go's bare error ("CONNECTION_REFUSED (remote)"), which matches
// net.ErrClosed and wraps neither ErrBusy nor ErrRefused: a caller could
// not tell "the peer is busy, try later" from its own transport closed.
func TestDialRefusedByBusyNodeIsTyped(t *testing.T) {
	ca := testCA(t, "m")
	v := newNode(t, issue(t, ca, "v"), nil)
	a := newNode(t, issue(t, ca, "a"), nil)
	v.gate.mu.Lock()
	v.gate.prefixRate, v.gate.prefixBurst = 0.1, 2
	v.gate.mu.Unlock()
	var busy error
	links := 0
	for start := time.Now(); busy == nil && time.Since(start) < 20*time.Second; {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		l, err := a.Dial(ctx, v.LocalAddr().String())
		cancel()
		if err != nil {
			busy = err
			break
		}
		links++
		l.Close("again")
		<-l.Done()
	}
	if busy == nil {
		t.Fatalf("%d links in 20 s and no dial refused: the gate did not refuse", links)
	}
	t.Logf("after %d links, dial refused: %v (%T)", links, busy, errors.Unwrap(busy))
	if errors.Is(busy, ErrClosed) {
		t.Errorf("a dial the busy node refused matches ErrClosed (\"the transport or link was closed locally\"): %v", busy)
	}
	if !errors.Is(busy, ErrBusy) || errors.Is(busy, ErrRefused) {
		t.Errorf("a dial the busy node refused returned %q: ErrBusy %v, ErrRefused %v, want ErrBusy only", busy, errors.Is(busy, ErrBusy), errors.Is(busy, ErrRefused))
	}
	var te *quic.TransportError
	if !errors.As(busy, &te) || te.ErrorCode != quic.ConnectionRefused || !te.Remote {
		t.Errorf("errors.As finds no remote CONNECTION_REFUSED in %q", busy)
	}
}
