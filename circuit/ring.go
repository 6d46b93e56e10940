package circuit

import (
	"math/bits"
	"runtime"
	"sync"
	"time"
)

// ring is a byte queue in one buffer that grows (by doubling) up to the
// most it must hold. An emptied buffer goes back to a pool, so an idle
// circuit holds none and a busy one reuses warm memory.
type ring struct {
	buf     []byte
	head, n int
	max     int  // the buffer never grows past max(max, what it holds)
	peak    int  // the most the buffer held since it was taken
	last    int  // the size the next buffer starts at (see release)
	pinned  bool // the free space is being filled (tail): keep the buffer
	// hdr is the slice header buf came in from a pool, kept to hand buf
	// back in: a sync.Pool holds pointers, and a header made at every
	// put cost an allocation each time the queue drained (twice per
	// small request and answer of a resumable circuit).
	hdr *[]byte
	// sized, when set, learns each change of the buffer's size (bytes
	// taken when it grows, given back when it goes to the pool).
	sized sizer
}

// sizer learns the changes of a ring's size. An interface rather than a
// func: a *Resumable set here costs no allocation, where each of its
// method values cost one per circuit.
type sizer interface{ sizedLocked(delta int) }

// ringPools hold buffers of 4 KiB << i bytes that ringCache had no room
// for.
var ringPools [12]sync.Pool

const minRing = 4 << 10

// ringClass is the index of size's pool, or -1 when size is not 4 KiB
// times a power of two within the pools.
func ringClass(size int) int {
	if i := bits.Len(uint(size/minRing)) - 1; size >= minRing && size == minRing<<i && i < len(ringPools) {
		return i
	}
	return -1
}

// getRing returns a buffer of size bytes and, when it came from a pool,
// the header it was kept in, for putRing to put it back in.
func getRing(size int) ([]byte, *[]byte) {
	if i := ringClass(size); i >= 0 {
		if size >= ringCacheMin {
			if b := rings.get(i); b != nil {
				return b, nil
			}
		}
		if h, ok := ringPools[i].Get().(*[]byte); ok {
			return *h, h
		}
	}
	return make([]byte, size), nil
}

// putRing gives b back, in hdr when not nil (the header getRing returned
// with it): a new header only for a buffer that came from elsewhere.
func putRing(b []byte, hdr *[]byte) {
	if i := ringClass(len(b)); i >= 0 && (len(b) < ringCacheMin || !rings.put(i, b, time.Now())) {
		if hdr == nil {
			hdr = new([]byte)
		}
		*hdr = b
		ringPools[i].Put(hdr)
	}
}

// Bounds of ringCache.
const (
	// ringCacheBytes bounds the bytes it keeps: a window's ring and
	// the smaller buffers it grew through, twice.
	ringCacheBytes = 4 * DefaultResumeWindow
	// ringCacheIdle: a buffer kept this long without being taken is
	// dropped at the next garbage collection.
	ringCacheIdle = time.Minute
	// ringCacheMin is the smallest buffer it keeps: smaller ones come
	// from the allocator's warm spans and the per-processor pools, which
	// the rings of interactive circuits keep warm without a shared lock.
	ringCacheMin = 64 << 10
)

// ringCache keeps emptied ring buffers for the next rings across garbage
// collections, which a sync.Pool does not: it drops what it holds at the
// second collection, and every bulk circuit then allocated, zeroed and
// faulted in about twice its window of fresh memory growing its rings
// (4 KiB, 8 KiB, ... up to the window): ring.push took 7 % of the CPU
// samples of a sender of 96 MiB circuits in one profile, 0.7 % with the
// cache. It keeps buffers of ringCacheMin bytes and more, at most
// ringCacheBytes in all; buffers beyond go to ringPools, and
// those not taken for ringCacheIdle are dropped at the next collection
// (one comes at least every two minutes), so an idle process holds none
// for long.
type ringCache struct {
	mu    sync.Mutex
	free  [len(ringPools)][]cachedRing // by class, the last put last
	bytes int
}

type cachedRing struct {
	b  []byte
	at time.Time // when it was put
}

var rings ringCache

func init() { armRingTrim() }

// armRingTrim has the next garbage collection trim rings, and arm the
// one after.
func armRingTrim() {
	runtime.AddCleanup(new(gcMark), func(struct{}) {
		rings.trim(time.Now())
		armRingTrim()
	}, struct{}{})
}

// gcMark is an object nothing keeps: collected by the next collection. It
// is not tiny (16 bytes), so that it is collected alone.
type gcMark [2]uintptr

// get takes the last buffer of class i put, or nil.
func (c *ringCache) get(i int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.free[i]
	if len(f) == 0 {
		return nil
	}
	b := f[len(f)-1].b
	f[len(f)-1] = cachedRing{}
	c.free[i] = f[:len(f)-1]
	c.bytes -= len(b)
	return b
}

// put keeps b of class i, unless that would exceed ringCacheBytes.
func (c *ringCache) put(i int, b []byte, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bytes+len(b) > ringCacheBytes {
		return false
	}
	c.free[i] = append(c.free[i], cachedRing{b, now})
	c.bytes += len(b)
	return true
}

// trim drops the buffers put before now - ringCacheIdle.
func (c *ringCache) trim(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, f := range c.free {
		k := 0
		for k < len(f) && now.Sub(f[k].at) >= ringCacheIdle {
			c.bytes -= len(f[k].b)
			k++
		}
		n := copy(f, f[k:])
		clear(f[n:])
		c.free[i] = f[:n]
	}
}

func (q *ring) len() int { return q.n }

// grow makes room for k more bytes.
func (q *ring) grow(k int) {
	if q.n+k <= len(q.buf) {
		return
	}
	q.resize(q.sizeFor(k))
}

// sizeFor is the size of the buffer grow takes to make room for k more
// bytes than the queue holds.
func (q *ring) sizeFor(k int) int {
	size := max(minRing, len(q.buf))
	if q.buf == nil {
		// A queue that emptied and fills again starts at the size its
		// last buffers needed, not at minRing: a busy stream does not
		// regrow (and copy) after each drain.
		size = max(size, q.last)
	}
	for size < q.n+k {
		size *= 2
	}
	if q.max > 0 {
		size = max(min(size, q.max), q.n+k)
	}
	return size
}

// nextSize is the least size above the buffer's that grow takes, 0 when
// the buffer is as large as it grows.
func (q *ring) nextSize() int {
	switch {
	case q.buf == nil:
		return minRing
	case q.max > 0 && len(q.buf) >= q.max:
		return 0
	case q.max > 0:
		return min(2*len(q.buf), q.max)
	}
	return 2 * len(q.buf)
}

// resize moves what the queue holds to a buffer of size bytes, at least
// what it holds.
func (q *ring) resize(size int) {
	nb, nh := getRing(size)
	if q.sized != nil {
		q.sized.sizedLocked(len(nb) - len(q.buf))
	}
	if q.buf != nil {
		q.copyOut(nb, 0, q.n)
		putRing(q.buf, q.hdr)
	}
	q.buf, q.hdr, q.head = nb, nh, 0
}

// push appends p.
func (q *ring) push(p []byte) {
	q.grow(len(p))
	tail := (q.head + q.n) % len(q.buf)
	k := copy(q.buf[tail:], p)
	copy(q.buf, p[k:])
	q.n += len(p)
	q.peak = max(q.peak, q.n)
}

// tail makes room for k > 0 more bytes and returns free space after the
// queued bytes: contiguous, at most k bytes, at least one. The caller
// fills a prefix of it and commits that; meanwhile pinned must be set if
// the lock is released, so that pop keeps the buffer in place.
func (q *ring) tail(k int) []byte {
	q.grow(k)
	t := (q.head + q.n) % len(q.buf)
	end := len(q.buf)
	if t < q.head {
		end = q.head
	}
	return q.buf[t:min(end, t+k)]
}

// commit appends the k bytes written at the start of tail's space.
func (q *ring) commit(k int) {
	q.n += k
	q.peak = max(q.peak, q.n)
}

// unpin ends a fill; an empty queue releases its buffer.
func (q *ring) unpin() {
	q.pinned = false
	if q.n == 0 {
		q.release()
	}
}

// release returns an empty queue's buffer to the pool.
func (q *ring) release() {
	q.head = 0
	if q.buf != nil {
		// What the buffer needed, or half the previous size: a burst
		// keeps its size for a while, an interactive stream after one
		// comes back to small buffers in a few drains.
		need := minRing
		for need < q.peak {
			need *= 2
		}
		q.last, q.peak = max(need, q.last/2), 0
		if q.sized != nil {
			q.sized.sizedLocked(-len(q.buf))
		}
		putRing(q.buf, q.hdr)
		q.buf, q.hdr = nil, nil
	}
}

// copyOut copies the k bytes at offset off into dst.
func (q *ring) copyOut(dst []byte, off, k int) {
	if k == 0 {
		return
	}
	start := (q.head + off) % len(q.buf)
	c := copy(dst[:k], q.buf[start:])
	copy(dst[c:k], q.buf)
}

// pop removes the first k bytes; an emptied buffer goes back to the pool.
func (q *ring) pop(k int) {
	q.n -= k
	if q.n == 0 && !q.pinned {
		q.release()
		return
	}
	if k > 0 {
		q.head = (q.head + k) % len(q.buf)
	}
}
