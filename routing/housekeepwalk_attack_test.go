package routing

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// housekeepWalkRun builds h holding n origins from an honest neighbour f
// (which sends its whole table again every update interval, so its routes
// stay), and a neighbour m, spoken for by the test, that sends h one
// update a message every RouteExpiry/n for secs seconds of virtual time:
// each of a route to one origin of f's, at a metric h never selects. With
// spread, m cycles through the n origins, each refreshed once per
// RouteExpiry; otherwise it refreshes the route to one origin only. It
// returns the walks of the table housekeeping made (Tick with
// housekeeping due), the wall-clock time h spent in Receive, Tick and
// Ready, and the messages m sent.
func housekeepWalkRun(t *testing.T, n int, spread bool, secs int) (int, time.Duration, int) {
	t0 := time.Unix(1_700_000_000, 0)
	h, err := New(Config{Self: "h", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	h.LinkUp(t0, "f", 10, false)
	h.LinkUp(t0, "m", 10, false)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("o%05d", i)
	}
	var table [][]byte
	for i := 0; i < n; i += 64 {
		var ens []entry
		for _, nm := range names[i:min(i+64, n)] {
			ens = append(ens, entry{kind: kindUpdate, origin: nm, seqno: 1, metric: 10, hops: 1})
		}
		table = append(table, encodeMessage(ens))
	}
	table = append(table, encodeMessage([]entry{{kind: kindUpdate, origin: "f", seqno: 1}}))
	now := t0
	walks := 0
	var spent time.Duration
	tick := func() {
		for {
			if nt := h.NextTick(); !nt.IsZero() && !nt.After(now) {
				if tt := h.at(now); h.hkValid && tt >= h.hkAt {
					walks++
				}
				h.Tick(now)
			}
			if len(h.Ready().Messages) == 0 {
				return
			}
		}
	}
	sendTable := func() {
		for _, p := range table {
			if err := h.Receive(now, "f", p); err != nil {
				t.Fatal(err)
			}
		}
		tick()
	}
	sendTable()
	now = now.Add(time.Second)
	tick()
	for _, nm := range names {
		if _, ok := h.Lookup(nm); !ok {
			t.Fatalf("h has no route to %s", nm)
		}
	}
	msgs := make([][]byte, n)
	for i, nm := range names {
		msgs[i] = encodeMessage([]entry{{kind: kindUpdate, origin: nm, seqno: 1, metric: 5000, hops: 3}})
	}
	step := h.cfg.RouteExpiry / time.Duration(n)
	start := now
	nextTable := now.Add(h.cfg.UpdateInterval)
	walks = 0
	sent := 0
	runtime.GC()
	for k := 0; now.Sub(start) < time.Duration(secs)*time.Second; k++ {
		now = start.Add(time.Duration(k) * step)
		began := time.Now()
		if !now.Before(nextTable) {
			sendTable()
			nextTable = nextTable.Add(h.cfg.UpdateInterval)
		}
		i := 0
		if spread {
			i = k % n
		}
		if err := h.Receive(now, "m", msgs[i]); err != nil {
			t.Fatal(err)
		}
		sent++
		tick()
		spent += time.Since(began)
	}
	for _, nm := range names {
		if rt, ok := h.Lookup(nm); !ok || rt.NextHop != "f" {
			t.Fatalf("h's route to %s: %+v %v, want through f", nm, rt, ok)
		}
	}
	return walks, spent, sent
}

// TestAttackSpreadRefreshesWalkTheTable: a neighbour m that sends one
// small update a message, each for another of the n origins h holds
// (refreshing each of its routes once per route expiry), made h's
// housekeeping, which walks the whole table when the earliest route
// expiry comes, run once per message: each route's expiry was the next
// to come (2,288 walks in 30 s, 271-281 ms of h's time, against 2 walks
// when the same messages are all for one origin). Housekeeping is now
// due at multiples of 200 ms: 82 walks.
func TestAttackSpreadRefreshesWalkTheTable(t *testing.T) {
	const n, secs = 4000, 30
	for range 2 {
		w1, d1, m1 := housekeepWalkRun(t, n, false, secs)
		w2, d2, m2 := housekeepWalkRun(t, n, true, secs)
		t.Logf("n=%d, %ds virtual: one origin: %d messages of m, %d table walks, h spent %v; spread over the origins: %d messages, %d walks, h spent %v (%.1fx)",
			n, secs, m1, w1, d1, m2, w2, d2, float64(d2)/float64(d1))
		if w2 > 16*secs {
			t.Errorf("m's %d single-update messages over %ds made h walk its table of %d origins %d times (%d with the same messages for one origin)",
				m2, secs, n, w2, w1)
		}
	}
}
