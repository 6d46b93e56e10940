package routing

import (
	"slices"
	"testing"
)

// Outputs handed out by take stay as they were when later ones are queued,
// and a caller appending to them cannot overwrite the later ones.
func TestOutQueueHandsOutStableSlices(t *testing.T) {
	var q outQueue[int]
	var taken [][]int
	var prev []int
	next := 0
	for round := range 3 * outChunk {
		for range round % 5 {
			q.push(next)
			next++
		}
		// A caller appending to what it took must not reach the
		// outputs queued since.
		_ = append(prev, -1)
		got := q.take()
		if round%5 == 0 && got != nil {
			t.Fatalf("round %d: took %v from an empty queue", round, got)
		}
		taken, prev = append(taken, got), got
	}
	q.push(next) // one more after a burst of takes
	next++
	taken = append(taken, q.take())
	var all []int
	for _, s := range taken {
		all = append(all, s...)
	}
	want := make([]int, next)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(all, want) {
		t.Fatalf("outputs taken %v, want 0..%d in order", all, next-1)
	}
}

// A burst larger than a chunk is handed out whole, and the engine lets the
// grown chunk go with it.
func TestOutQueueBurst(t *testing.T) {
	var q outQueue[int]
	for i := range 5 * outChunk {
		q.push(i)
	}
	if n := q.len(); n != 5*outChunk {
		t.Fatalf("len %d, want %d", n, 5*outChunk)
	}
	got := q.take()
	if len(got) != 5*outChunk || got[0] != 0 || got[len(got)-1] != 5*outChunk-1 {
		t.Fatalf("took %d outputs [%d..%d]", len(got), got[0], got[len(got)-1])
	}
	if q.buf != nil || q.len() != 0 {
		t.Fatalf("queue keeps a chunk of %d after handing out a burst", cap(q.buf))
	}
}
