package links

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	var b backoff
	ceil := keepMinBackoff
	for i := range 12 {
		w := b.next()
		if w < ceil/2 || w > ceil {
			t.Fatalf("wait %d: %v outside [%v, %v]", i, w, ceil/2, ceil)
		}
		ceil = min(2*ceil, keepMaxBackoff)
	}
	if ceil != 10*time.Second {
		t.Fatalf("backoff ceiling %v, want 10s", ceil)
	}
	b.reset()
	if w := b.next(); w > keepMinBackoff {
		t.Fatalf("after reset: %v", w)
	}
}

// TestKeepRedials keeps a static link to an address whose node comes and
// goes: the link comes back each time.
func TestKeepRedials(t *testing.T) {
	ca := testCA(t, "m")
	ida := issue(t, ca, "a")
	a := newNode(t, ida, nil)
	addr := a.LocalAddr().String()
	_ = a.Close()
	b := newNode(t, issue(t, ca, "b"), nil)
	stop := b.Keep(addr)
	defer stop()
	for i := range 2 {
		time.Sleep(300 * time.Millisecond) // b dials into nothing meanwhile
		a = newNode(t, ida, func(c *QUICConfig) { c.ListenAddr = addr })
		b.rec.waitEvent(t, "up", 5*time.Second)
		if l := b.Link("a"); l == nil || !l.Outbound() {
			t.Fatalf("round %d: no outbound link to a", i)
		}
		_ = a.Close()
		b.rec.waitEvent(t, "down", 5*time.Second)
	}
	stop()
	if ups, _ := b.rec.counts(); ups != 2 {
		t.Fatalf("%d links, want 2", ups)
	}
}
