package routing

import (
	"testing"
	"time"
)

// A request's answer from the selected next hop marks the origin urgent,
// but that hop is told nothing about the origin (poison reverse): it must
// not be left marked urgent with nothing queued, or the next ordinary
// update to it goes out within the rate limit.
func TestUrgentOnlyWithQueuedUpdate(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	e := newEngine(t, Config{Self: "x"})
	e.LinkUp(base, "a", 1, false)
	e.LinkUp(base, "b", 1, false)
	e.Ready()
	now := base.Add(time.Millisecond)
	mustReceive(t, e, now, "a", update("o", 1, 10))
	now = now.Add(DefaultMinTriggeredInterval * 3)
	e.Tick(now)
	mustReceive(t, e, now, "b", encodeMessage([]entry{{kind: kindRequest, origin: "o", seqno: 2, hopcnt: 5}}))
	now = now.Add(DefaultMinTriggeredInterval * 3)
	e.Tick(now)
	e.Ready()
	// a real batch to a: q via b
	mustReceive(t, e, now, "b", update("q", 1, 5))
	if len(sent(t, e.Ready(), "a")) == 0 {
		t.Fatal("q not sent to a")
	}
	sentAt := now
	now = now.Add(time.Millisecond)
	mustReceive(t, e, now, "a", update("o", 2, 10)) // answers the forwarded request
	e.Ready()
	now = now.Add(DefaultMinTriggeredInterval / 10)
	e.Tick(now)
	e.Ready()
	mustReceive(t, e, now, "b", update("p", 1, 5)) // non-urgent, for a
	for i := 0; i < 200; i++ {
		e.Tick(now)
		if es := sent(t, e.Ready(), "a"); len(es) > 0 {
			gap := now.Sub(sentAt)
			t.Logf("p to a %v after the previous real batch to a", gap)
			if gap < DefaultMinTriggeredInterval {
				t.Errorf("non-urgent update to a went %v after the last real batch, within the rate limit %v", gap, DefaultMinTriggeredInterval)
			}
			return
		}
		now = now.Add(time.Millisecond)
	}
	t.Fatal("p never sent to a")
}
