package simulate

import (
	"slices"
	"testing"
	"time"
)

// TestTransferPathAfterResume: in a diamond a–{b,c}–d, the relay a
// transfer crosses is killed mid-way; the resumable circuit moves to the
// other relay and the transfer completes. TransferResult.Path names the
// path that carried the circuit at the end (the live relay), not the one
// it was opened on, so the report's "path" and a workload's stretch
// figures describe the path the data took last.
func TestTransferPathAfterResume(t *testing.T) {
	c := newTestCluster(t, "a", "b", "c", "d")
	for _, e := range [][2]string{{"a", "b"}, {"a", "c"}, {"b", "d"}, {"c", "d"}} {
		if err := c.Link(ctxT(t, patience), e[0], e[1], LinkParams{Latency: time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.WaitConverged(ctxT(t, patience)); err != nil {
		t.Fatal(err)
	}
	p, ok, _ := c.Route("a", "d")
	if !ok {
		t.Fatal("a has no route to d")
	}
	relay, other := p.NextHop, "c"
	if relay == "c" {
		other = "b"
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
