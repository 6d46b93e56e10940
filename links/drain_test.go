package links

import (
	"context"
	"testing"
	"time"
)

// TestDrainRaisesCostAtThePeer: after Drain, the peer reports its link to
// the draining node at the highest cost (so routing avoids it), and the
// link and its streams keep working until Close.
func TestDrainRaisesCostAtThePeer(t *testing.T) {
	a, b, la := pair(t)
	lb := acceptedLink(t, b, "a")
	defer echo(lb)()
	defer a.Close()
	b.Drain()
	waitFor(t, "a to see b draining", 10*time.Second, func() bool { q := la.Quality(); return q.Cost == maxCost && q.Draining })
	a.rec.waitEvent(t, "cost", 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := roundTrip(ctx, la, 1, 64<<10); err != nil {
		t.Fatalf("stream on a draining link: %v", err)
	}
	if _, downs := a.rec.counts(); downs != 0 {
		t.Fatalf("draining took the link down: %v", la.Err())
	}
	if q := lb.Quality(); q.Cost == maxCost {
		t.Fatalf("the draining side raised its own cost: %+v", q)
	}
}
