package node

import (
	"fmt"
	"testing"
	"time"
)

func TestFlapDamperHoldsOnlyQuickCycles(t *testing.T) {
	t0 := time.Unix(1000, 0)
	t.Run("restarts", func(t *testing.T) {
		var d flapDamper
		for i := range 20 { // a link that comes up every 11 s never gathers a penalty
			if w := d.up("p", t0.Add(time.Duration(i)*11*time.Second)); w != 0 {
				t.Fatalf("up %d, 11 s after the last: held %v", i, w)
			}
		}
	})
	t.Run("quick", func(t *testing.T) {
		var d flapDamper
		held := -1
		for i := range 10 {
			if w := d.up("p", t0.Add(time.Duration(i)*100*time.Millisecond)); w > 0 && held < 0 {
				held = i
				if w < 10*time.Second || w > 20*time.Second {
					t.Fatalf("first hold %v, want about one half-life (15 s)", w)
				}
			}
		}
		// Up 0 gathers nothing, each later one 1, less what decayed in the
		// 100 ms between: at up 5 the penalty is past 4.
		if held != 5 {
			t.Fatalf("first held up: %d, want 5", held)
		}
		if d.peers["q"] != nil || d.up("q", t0) != 0 {
			t.Fatal("another peer is damped too")
		}
	})
	t.Run("capped", func(t *testing.T) {
		var d flapDamper
		var w time.Duration
		for i := range 1000 {
			w = d.up("p", t0.Add(time.Duration(i)*time.Millisecond))
		}
		if w > 61*time.Second || w < 59*time.Second {
			t.Fatalf("hold after 1000 quick ups: %v, want the 60 s cap", w)
		}
		later := t0.Add(time.Second + w)
		if got := d.wait("p", later); got != 0 {
			t.Fatalf("still held %v after the hold", got)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		var d flapDamper
		for i := range flapPeers + 10 {
			d.up(fmt.Sprint("p", i), t0)
		}
		if len(d.peers) != flapPeers {
			t.Fatalf("%d peers tracked, bound %d", len(d.peers), flapPeers)
		}
		// Entries that can hold nothing any more make room.
		d.up("late", t0.Add(flapQuick))
		if d.peers["late"] == nil || len(d.peers) > flapPeers {
			t.Fatalf("late peer not tracked after a sweep (%d tracked)", len(d.peers))
		}
	})
}
