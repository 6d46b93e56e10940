package routing

import (
	"testing"
	"time"
)

// An origin that restarts at a seqno 0x8000 or 0x8001 past our
// feasibility distance F is out of reach of seqno requests: its seqno is
// not newer than F, so its routes are unfeasible, and the request for F+1
// is not newer than its seqno, so it does not raise (seqnos compare
// modulo 2^16, where "newer" is not transitive). Once the origin has been
// unreachable for two route expiry periods, nobody routes through us to
// it, and we forget F: its routes are taken and the request ends.
func TestRouteAtAntipodeOfFeasibilityDistance(t *testing.T) {
	for _, off := range []uint16{0x8000, 0x8001} {
		e := newEngine(t, Config{Hysteresis: NoHysteresis})
		e.LinkUp(t0, "b", 10, false)
		e.LinkUp(t0, "c", 10, false)
		now := t0.Add(time.Second)
		const held = 0xfff0
		mustReceive(t, e, now, "b", update("x", held, 20))
		e.Tick(now)
		e.Ready()
		if o := e.origins.get("x"); !o.fdValid || o.fdSeqno != held {
			t.Fatalf("setup: feasibility distance %v %d, want %d", o.fdValid, o.fdSeqno, held)
		}
		now = now.Add(time.Second)
		mustReceive(t, e, now, "b", update("x", held, e.cfg.Infinity))
		lost := now
		expiry := e.cfg.RouteExpiry
		restarted := held + off
		var asked []uint16
		for {
			now = now.Add(500 * time.Millisecond)
			mustReceive(t, e, now, "b", update("x", restarted, 20))
			e.Tick(now)
			for _, en := range sent(t, e.Ready(), "b") {
				if en.kind == kindRequest && en.origin == "x" {
					asked = append(asked, en.seqno)
				}
			}
			if r, ok := e.Lookup("x"); ok {
				if r.Seqno != restarted || r.NextHop != "b" {
					t.Fatalf("x at %#x: route %+v", restarted, r)
				}
				break
			}
			if now.Sub(lost) > 2*expiry+time.Second {
				t.Fatalf("x at %#x (held %#x) still unreachable %v after it was lost (route expiry %v); requests sent for %#x",
					restarted, held, now.Sub(lost), expiry, asked)
			}
		}
		if now.Sub(lost) < 2*expiry {
			t.Fatalf("x reached %v after it was lost, before two route expiry periods (%v)", now.Sub(lost), 2*expiry)
		}
		if len(asked) == 0 || asked[0] != held+1 {
			t.Fatalf("requests sent for %#x, want %#x first", asked, held+1)
		}
		if open := RequestsInProgress(e); len(open) > 0 {
			t.Fatalf("requests still in progress for %v once x is reached", open)
		}
		t.Logf("x at %#x past %#x: reached %v after it was lost; requests sent for %#x", off, held, now.Sub(lost), asked)
	}
}
