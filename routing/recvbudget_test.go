package routing

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A neighbour sending messages faster than its receive budget has the
// excess refused unread (Stats.OverBudget, ErrOverBudget naming it),
// while another neighbour's messages are still taken; the budget comes
// back with time. A message without entries is refused as malformed.
func TestNeighbourFloodRefusedUnread(t *testing.T) {
	e, err := New(Config{Self: "d"})
	if err != nil {
		t.Fatal(err)
	}
	e.LinkUp(ct0, "m", 10, false)
	e.LinkUp(ct0, "h", 10, false)
	e.Ready()
	req := encodeMessage([]entry{{kind: kindRequest, origin: "q", seqno: 1, hopcnt: 1}})
	burst := recvBurstWindows * recvBudgetFactor * maxBurstMessages // 2048
	taken, refused := 0, 0
	for range 10 * burst {
		err := e.Receive(ct0, "m", req)
		switch {
		case err == nil:
			taken++
		case errors.Is(err, ErrOverBudget):
			refused++
			if !strings.Contains(err.Error(), `"m"`) {
				t.Fatalf("refusal %q does not name the neighbour", err)
			}
		default:
			t.Fatal(err)
		}
	}
	if taken != burst || refused != 9*burst {
		t.Fatalf("of %d messages at once from m, %d taken and %d refused; want %d taken", 10*burst, taken, refused, burst)
	}
	if got := e.Stats().OverBudget; got != uint64(refused) {
		t.Fatalf("Stats.OverBudget %d, want %d", got, refused)
	}
	// h has a budget of its own.
	if err := e.Receive(ct0, "h", req); err != nil {
		t.Fatalf("h's message refused while m floods: %v", err)
	}
	// One window later m has a window's budget again, and no more.
	taken = 0
	for range burst {
		if e.Receive(ct0.Add(DefaultMinTriggeredInterval), "m", req) == nil {
			taken++
		}
	}
	if want := recvBudgetFactor * maxBurstMessages; taken < want-1 || taken > want+1 {
		t.Fatalf("a window later, m had %d messages taken, want %d", taken, want)
	}
	// An empty message is malformed (no engine sends one), and is counted.
	later := ct0.Add(time.Second)
	mal := e.Stats().Malformed
	if err := e.Receive(later, "h", []byte{wireBase, 0, 0}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty message: %v, want ErrMalformed", err)
	}
	if e.Stats().Malformed != mal+1 {
		t.Fatal("the empty message was not counted as malformed")
	}
	// Bytes have a budget too: 4 MiB at once, then 512 KiB per window.
	big := make([]entry, 0, 64)
	for i := range 64 {
		big = append(big, upd(fmt.Sprintf("%0200d", i), 1, 10))
	}
	msg := encodeMessage(big)
	e2, _ := New(Config{Self: "d"})
	e2.LinkUp(ct0, "m", 10, false)
	n := 0
	for e2.Receive(ct0, "m", msg) == nil {
		n++
	}
	if got, want := n*len(msg), recvBurstWindows*recvBudgetFactor*DefaultMaxBurstBytes; got > want || got < want-len(msg) {
		t.Fatalf("m had %d messages of %d bytes taken at once (%d bytes), want %d bytes", n, len(msg), got, want)
	}
}

// An honest engine sending a new neighbour its whole table, as fast as its
// own send rules allow, never exceeds the receiver's budget: here in
// messages of one route each (an attestation and its update), more than the
// burst the budget takes at once, delivered as each window's batch leaves.
func TestHonestTableWithinReceiveBudget(t *testing.T) {
	const origins = 4000
	c := &fakeCertifier{}
	a, err := New(Config{Self: "a", Certifier: c, MaxRoutesPerMessage: 2})
	if err != nil {
		t.Fatal(err)
	}
	a.LinkUp(ct0, "b", 10, false)
	for i := range origins {
		name := fmt.Sprintf("o%04d", i)
		at := ct0.Add(time.Duration(i) * time.Millisecond) // within b's budget
		if err := a.Receive(at, "b", encodeMessage([]entry{att(name, 1, fmt.Sprintf("att:%s/1", name)), upd(name, 1, 10)})); err != nil {
			t.Fatal(err)
		}
	}
	a.Tick(ct0.Add(origins * time.Millisecond))
	a.Ready()
	r, err := New(Config{Self: "r", Certifier: &fakeCertifier{}, MaxRoutesPerMessage: 2})
	if err != nil {
		t.Fatal(err)
	}
	now := ct0.Add(origins*time.Millisecond + time.Second)
	a.LinkUp(now, "r", 10, false)
	r.LinkUp(now, "a", 10, false)
	msgs := 0
	for range 1000 {
		for _, m := range a.Ready().Messages {
			if m.To != "r" {
				continue
			}
			msgs++
			if err := r.Receive(now, "a", m.Payload); err != nil {
				t.Fatalf("message %d of the table: %v", msgs, err)
			}
		}
		if !a.Pending() {
			break
		}
		now = a.NextTick()
		a.Tick(now)
	}
	if msgs <= recvBurstWindows*recvBudgetFactor*maxBurstMessages {
		t.Fatalf("the table took %d messages: no more than the budget's burst", msgs)
	}
	if r.Stats().Destinations < origins {
		t.Fatalf("r learnt %d destinations of %d", r.Stats().Destinations, origins)
	}
	t.Logf("%d messages of the table, none over the budget", msgs)
}
