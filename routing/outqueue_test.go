package routing

import (
	"slices"
	"testing"
)

// Outputs come out in order, each once.
func TestOutQueueHandsOutInOrder(t *testing.T) {
	var q outQueue[int]
	var all []int
	next := 0
	for round := range 3 * maxKeptOut {
		for range round % 5 {
			q.push(next)
			next++
		}
		got := q.take()
		if round%5 == 0 && got != nil {
			t.Fatalf("round %d: took %v from an empty queue", round, got)
		}
		if q.len() != 0 || q.take() != nil {
			t.Fatalf("round %d: outputs left after take", round)
		}
		all = append(all, got...)
	}
	want := make([]int, next)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(all, want) {
		t.Fatalf("outputs taken %v, want 0..%d in order", all, next-1)
	}
}

// Steady outputs reuse one buffer: pushing and taking allocates nothing.
func TestOutQueueReusesItsBuffer(t *testing.T) {
	var q outQueue[Event]
	allocs := testing.AllocsPerRun(100, func() {
		for range 10 {
			q.push(Event{Dest: "a", Kind: PeerUp})
		}
		if len(q.take()) != 10 {
			t.Fatal("lost outputs")
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per push and take", allocs)
	}
}

// A burst larger than maxKeptOut is handed out whole, and the queue lets
// the grown buffer go with it.
func TestOutQueueBurst(t *testing.T) {
	var q outQueue[int]
	for i := range 5 * maxKeptOut {
		q.push(i)
	}
	if n := q.len(); n != 5*maxKeptOut {
		t.Fatalf("len %d, want %d", n, 5*maxKeptOut)
	}
	got := q.take()
	if len(got) != 5*maxKeptOut || got[0] != 0 || got[len(got)-1] != 5*maxKeptOut-1 {
		t.Fatalf("took %d outputs [%d..%d]", len(got), got[0], got[len(got)-1])
	}
	if q.buf != nil || q.len() != 0 {
		t.Fatalf("queue keeps a buffer of %d after handing out a burst", cap(q.buf))
	}
	q.push(1)
	if got[0] != 0 {
		t.Fatal("a push after a burst wrote into the burst handed out")
	}
}
