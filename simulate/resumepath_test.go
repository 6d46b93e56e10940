package simulate

import (
	"slices"
	"testing"
	"time"
)

// TestTransferPathAfterResume: in a diamond a–{b,c}–d whose b side is
// the faster, b, the relay a transfer crosses, is killed mid-way; the
// resumable circuit moves to c and the transfer completes.
// TransferResult.Path names the path that carried the circuit last (through
// c), not the one it was opened on, so the report's "path" and a
// workload's stretch figures describe the path the data took last.
func TestTransferPathAfterResume(t *testing.T) {
	c := newTestCluster(t, "a", "b", "c", "d")
	// The c side slower, so that the transfer opens through b: with equal
	// sides the route could move to c between Route and Dial, and b's
	// death would not touch the transfer.
	for _, e := range []struct {
		a, b    string
		latency time.Duration
	}{{"a", "b", time.Millisecond}, {"b", "d", time.Millisecond}, {"a", "c", 20 * time.Millisecond}, {"c", "d", 20 * time.Millisecond}} {
		if err := c.Link(ctxT(t, patience), e.a, e.b, LinkParams{Latency: e.latency}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.waitOptimal(ctxT(t, patience)); err != nil {
		t.Fatal(err)
	}
	relay, other := "b", "c"
	if p, ok, _ := c.Route("a", "d"); !ok || p.NextHop != relay {
		t.Fatalf("a's route to d: %+v (reachable %v), want next hop %s", p, ok, relay)
	}
	type out struct {
		r   TransferResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		r, err := c.Transfer(ctxT(t, 55*time.Second), "a", "d", 64<<20)
		done <- out{r, err}
	}()
	time.Sleep(300 * time.Millisecond)
	if err := c.Kill(relay); err != nil {
		t.Fatal(err)
	}
	o := <-done
	if o.err != nil {
		t.Fatalf("transfer around the killed relay %s: %v", relay, o.err)
	}
	if slices.Contains(o.r.Path, relay) || !slices.Contains(o.r.Path, other) {
		t.Errorf("transfer completed after %s was killed mid-way (so through %s), reported path %v", relay, other, o.r.Path)
	}
}
