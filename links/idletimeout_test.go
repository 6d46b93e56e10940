package links

import (
	"context"
	"testing"
	"time"
)

// TestLongProbeFloorOutlastsQUICIdleTimeout: with a longer probe floor
// (ProbeInterval × ProbeMisses) the failure detector may allow a peer that
// has been seen to stall up to detectorCap × the floor of silence; QUIC's
// own idle timeout must not close the link before the detector would. a
// and b probe every 500 ms and allow 4 misses (a floor of 2 s, a cap of
// 16 s). b's packets are cut for longer and longer spells until a's
// detector allows more than 13 s, then for 11.5 s: past the 10 s of QUIC's
// old fixed idle timeout, within what the detector allows. The link must
// live and carry a stream afterwards.
func TestLongProbeFloorOutlastsQUICIdleTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("cuts a link for about 20 s in all")
	}
	slow := func(c *QUICConfig) {
		c.ProbeInterval = 500 * time.Millisecond
		c.ProbeMisses = 4
	}
	floor := 4 * 500 * time.Millisecond
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), slow)
	b, fc := faultyNode(t, issue(t, ca, "b"), slow)
	la := dial(t, a, b)
	b.rec.waitEvent(t, "up", patience)
	stopEcho := echo(acceptedLink(t, b, "a"))
	defer func() { _ = la.Close("test over"); stopEcho() }()
	ql := la.(*quicLink)

	cut := func(d time.Duration) {
		fc.cut.Store(true)
		time.Sleep(d)
		fc.cut.Store(false)
		time.Sleep(time.Second) // let the link recover and the detector learn
		if err := la.Err(); err != nil {
			t.Fatalf("link lost after a %v cut (a's detector allowed %v): %v", d, ql.gaps.allowance(floor), err)
		}
	}
	time.Sleep(time.Second)
	for i := 0; ql.gaps.allowance(floor) < 13*time.Second; i++ {
		if i == 6 {
			t.Fatalf("a's detector allows only %v after %d cuts", ql.gaps.allowance(floor), i)
		}
		cut(ql.gaps.allowance(floor) * 6 / 10)
	}
	allow := ql.gaps.allowance(floor)
	cut(11500 * time.Millisecond)
	t.Logf("link lived through an 11.5 s cut (a's detector allowed %v)", allow)
	s, err := la.OpenStream(context.Background())
	if err != nil {
		t.Fatalf("open a stream after the cut: %v", err)
	}
	defer s.Close()
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	_ = s.SetReadDeadline(time.Now().Add(patience))
	if _, err := s.Read(buf); err != nil || buf[0] != 'x' {
		t.Fatalf("echo after the cut: %q, %v", buf, err)
	}
}
