package circuit

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
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

// TestRingBufferOutlivesCollections: a ring buffer given back is reused by
// the next ring after garbage collections, which a sync.Pool drops: a
// bulk circuit does not allocate and fault in its rings again.
func TestRingBufferOutlivesCollections(t *testing.T) {
	// Start from an empty cache: earlier tests' circuits may have filled it.
	saved := rings.take()
	t.Cleanup(func() { rings.restore(saved) })
	const size = minRing << (len(ringPools) - 1) // a class default circuits do not use
	q := ring{max: size}
	q.push(make([]byte, size))
	first := &q.buf[0]
	q.pop(q.len())
	runtime.GC()
	runtime.GC()
	q.push(make([]byte, size))
	if &q.buf[0] != first {
		t.Fatal("a ring buffer given back was not reused after two collections")
	}
	q.pop(q.len())
}

// TestRingCacheBounds: the cache keeps at most ringCacheBytes, gives the
// last buffer put first, and drops those kept ringCacheIdle.
func TestRingCacheBounds(t *testing.T) {
	var c ringCache
	t0 := time.Now()
	i := ringClass(1 << 20)
	var kept int
	for c.put(i, make([]byte, 1<<20), t0) {
		kept++
	}
	if kept != ringCacheBytes/(1<<20) {
		t.Fatalf("kept %d buffers of 1 MiB, want %d", kept, ringCacheBytes/(1<<20))
	}
	last := make([]byte, 1<<20)
	c.get(i)
	c.put(i, last, t0.Add(ringCacheIdle/2))
	if b := c.get(i); &b[0] != &last[0] {
		t.Fatal("get did not give the last buffer put")
	}
	c.put(i, last, t0.Add(ringCacheIdle/2))
	c.trim(t0.Add(ringCacheIdle))
	if c.bytes != 1<<20 || len(c.free[i]) != 1 || &c.free[i][0].b[0] != &last[0] {
		t.Fatalf("after the trim the cache holds %d bytes in %d buffers, want the one put later", c.bytes, len(c.free[i]))
	}
	c.trim(t0.Add(2 * ringCacheIdle))
	if c.bytes != 0 || c.get(i) != nil {
		t.Fatalf("the cache holds %d bytes once every buffer idled", c.bytes)
	}
}

// ringCacheState is what take empties out of a ringCache and restore puts
// back.
type ringCacheState struct {
	free  [len(ringPools)][]cachedRing
	bytes int
}

func (c *ringCache) take() ringCacheState {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := ringCacheState{c.free, c.bytes}
	c.free, c.bytes = [len(ringPools)][]cachedRing{}, 0
	return s
}

func (c *ringCache) restore(s ringCacheState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.free, c.bytes = s.free, s.bytes
}
