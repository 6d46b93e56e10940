package routing

import (
	"fmt"
	"testing"
	"time"
)

// A neighbour whose window's bytes stopped within a message header of
// Config.MaxBurstBytes, with an update queued and its summary due: the
// batch waits for the next window, and a caller that ticks at NextTick
// does not tick again and again at the same instant sending nothing
// (it did while the batch's due time ignored the header that the budget
// check counts).
func TestPacedNextTickDoesNotSpinInHeaderGap(t *testing.T) {
	const budget = 4 << 10
	e, err := New(Config{Self: "a", Certifier: &fakeCertifier{}, MaxBurstBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	e.LinkUp(ct0, "b", 10, false)
	for i := range 5 {
		name := fmt.Sprintf("o%03d", i)
		recvEntries(t, e, "b", att(name, 1, fmt.Sprintf("att:%s/1", name)), upd(name, 1, 10))
	}
	now := ct0.Add(time.Second)
	e.LinkUp(now, "m", 10, false)
	for range 20 { // settle: the table and the summary went
		e.Tick(now)
		e.Ready()
		now = now.Add(time.Second)
	}
	e.Tick(now)
	e.Ready()
	// The window: a batch of this window left burstBytes budget-1 (one
	// byte short of the budget, within a header of it).
	nb := e.nbrs["m"]
	tt := e.at(now)
	nb.burstAt, nb.burstBytes, nb.burstMsgs = tt, budget-1, 3
	nb.summaryDue = true
	nb.queue(e.origins.get("o001"))
	idle := 0
	for i := 0; i < 200; i++ {
		next := e.NextTick()
		e.Tick(next)
		sent := 0
		for _, m := range e.Ready().Messages {
			if m.To == "m" {
				sent++
			}
		}
		if sent == 0 && !next.After(now) {
			idle++
		}
		now = next
		if !e.Pending() {
			break
		}
	}
	if idle > 3 {
		t.Fatalf("%d ticks at NextTick sent nothing and NextTick did not advance (spin)", idle)
	}
}

// A MaxBurstBytes below one message still lets a window's first entry go
// (before, it sent a new neighbour nothing, ever, while NextTick said
// "now" at every call).
func TestTinyBurstStillSends(t *testing.T) {
	e, err := New(Config{Self: "a", Certifier: &fakeCertifier{}, MaxBurstBytes: 3})
	if err != nil {
		t.Fatal(err)
	}
	now := ct0
	e.LinkUp(now, "m", 10, false)
	sent, stuck := 0, 0
	for i := 0; i < 100; i++ {
		next := e.NextTick()
		if !next.After(now) && i > 0 {
			stuck++
		}
		now = next
		e.Tick(now)
		for _, m := range e.Ready().Messages {
			if m.To == "m" {
				sent++
			}
		}
	}
	if sent == 0 || stuck > 10 {
		t.Fatalf("MaxBurstBytes 3: %d messages to m in 100 ticks, %d ticks where NextTick did not advance", sent, stuck)
	}
}
