package circuit

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestRingKeepsOrder drives a ring with random pushes, fills through tail
// (with drains while pinned, as a Read during a path's Read does) and
// pops, against a plain byte slice: every byte comes out once, in order.
func TestRingKeepsOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	q := ring{max: 1 << 20}
	var want []byte
	next := byte(0)
	gen := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = next
			next++
		}
		return b
	}
	for range 3000 {
		switch rng.IntN(4) {
		case 0:
			p := gen(rng.IntN(16 << 10))
			q.push(p)
			want = append(want, p...)
		case 1:
			k := 1 + rng.IntN(16<<10)
			dst := q.tail(k)
			if len(dst) == 0 || len(dst) > k {
				t.Fatalf("tail(%d) gave %d bytes", k, len(dst))
			}
			q.pinned = true
			if rng.IntN(2) == 0 { // the reader drains meanwhile
				q.pop(q.len())
				want = want[:0]
			}
			n := rng.IntN(len(dst) + 1)
			copy(dst, gen(n))
			q.commit(n)
			want = append(want, dst[:n]...)
			q.unpin()
		default:
			k := rng.IntN(q.len() + 1)
			got := make([]byte, k)
			q.copyOut(got, 0, k)
			if !bytes.Equal(got, want[:k]) {
				t.Fatalf("popped bytes differ from those pushed")
			}
			q.pop(k)
			want = want[k:]
		}
		if q.len() != len(want) {
			t.Fatalf("ring holds %d bytes, want %d", q.len(), len(want))
		}
		if q.len() == 0 && q.buf != nil {
			t.Fatalf("an empty ring holds a %d-byte buffer", len(q.buf))
		}
	}
}

// TestRingShrinksAfterBurst: after a burst, an interactive stream's
// buffers come back to the minimum within a few drains.
func TestRingShrinksAfterBurst(t *testing.T) {
	q := ring{max: 4 << 20}
	q.push(make([]byte, 1<<20))
	q.pop(q.len())
	q.push([]byte("x"))
	if len(q.buf) < 1<<20 {
		t.Fatalf("the buffer after a 1 MiB burst starts at %d bytes", len(q.buf))
	}
	q.pop(1)
	for range 12 {
		q.push([]byte("x"))
		q.pop(1)
	}
	q.push([]byte("x"))
	if len(q.buf) != minRing {
		t.Fatalf("after 12 small drains the buffer is %d bytes, want %d", len(q.buf), minRing)
	}
}
