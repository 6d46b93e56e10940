package routing

import (
	"fmt"
	"testing"
	"time"
)

// Pending lists hold ids: a removed entry still queued for neighbours
// keeps its id until the last of their lists lets it go, so that an
// entry created meanwhile takes another id and no list names it; the id
// is given out again once no list holds it. Neighbours from slot
// maskSlots on (pendSet) count as the others.
func TestRemovedQueuedOriginKeepsItsID(t *testing.T) {
	e, err := New(Config{Self: "a"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	var nbs []*neighbour
	for i := range maskSlots + 1 {
		name := fmt.Sprintf("n%02d", i)
		e.LinkUp(now, name, 10, false)
		nbs = append(nbs, e.nbrs[name])
	}
	e.Tick(now)
	e.Ready()
	low, high := nbs[0], nbs[maskSlots]
	if low.slot >= maskSlots || high.slot < maskSlots {
		t.Fatalf("slots %d and %d, want one below %d and one from it on", low.slot, high.slot, maskSlots)
	}
	x := e.addOrigin(named("x"))
	low.queue(x)
	high.queue(x)
	e.removeOrigin(x)
	if e.Known("x") {
		t.Fatal("x still in the table after its removal")
	}
	y := e.addOrigin(named("y"))
	if y.id == x.id {
		t.Fatalf("y took id %d of x while two pending lists held it", x.id)
	}
	high.queue(x) // removed: not queued again
	if len(high.pending) != 1 {
		t.Fatalf("%d entries pending for %s, want 1 (x once)", len(high.pending), high.name)
	}
	e.clearPending(high)
	if z := e.addOrigin(named("z")); z.id == x.id {
		t.Fatalf("z took id %d of x while %s's list held it", x.id, low.name)
	}
	e.dropPending(low, 1)
	if w := e.addOrigin(named("w")); w.id != x.id {
		t.Fatalf("w took id %d, want %d of x, which no list holds any more", w.id, x.id)
	}
	if len(e.zombies) != 0 {
		t.Fatalf("%d removed entries still held, want none", len(e.zombies))
	}
	for _, name := range []string{"y", "z", "w"} {
		if !e.Known(name) {
			t.Errorf("%s not in the table", name)
		}
	}
}
