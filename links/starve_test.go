package links

import (
	"testing"
	"time"
)

// TestFreshLinkToSlowPeerSurvives links a to a peer whose every packet
// arrives a second late, as from a CPU-starved process: the handshake
// shows the delay, and the link must not be declared dead before the
// peer's first probe could arrive. A peer killed afterwards is still
// found dead.
func TestFreshLinkToSlowPeerSurvives(t *testing.T) {
	fc, err := newFaultConn()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fc.Close() })
	const delay = time.Second
	fc.setDelay(delay)
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), nil)
	b := newNode(t, issue(t, ca, "b"), func(c *QUICConfig) { c.PacketConn = fc })
	began := time.Now()
	la := dial(t, a, b)
	t.Logf("handshake with %v of delay took %v; allowance %v", delay, time.Since(began).Round(time.Millisecond), allowance(la))
	b.rec.waitEvent(t, "up", patience)
	// Long enough for the peer's first probes, and for the detector to
	// have been tried against many ticks.
	time.Sleep(3 * delay)
	if err := la.Err(); err != nil {
		t.Fatalf("link to a slow but live peer declared dead: %v", err)
	}
	_ = fc.Close()
	a.rec.waitEvent(t, "down", patience)
	t.Logf("killed peer then detected: %v", la.Err())
}
