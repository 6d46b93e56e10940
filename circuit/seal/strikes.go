package seal

import (
	"container/heap"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// Strikes is the destination's replay register for first (IK) messages,
// which carry early data: it remembers the initiator ephemeral key of every
// first message whose timestamp is within Window of now, and refuses a
// message it has seen, one whose timestamp lies outside the window or
// before the register was created (a message captured before a restart),
// and any new one while the register is full. A message captured before a
// restart but stamped after it (its source's clock ahead of this node's)
// is not refused: MayPredate tells the caller not to take its early data
// (Responder.DropEarly). Each refusal wraps ErrRetry:
// the source then opens with the full handshake, which cannot be replayed.
//
// The register is shared by every source, so one source may not fill it:
// once it is half full, a source that holds its share (a 64th of the
// bound) is refused (ErrReplayShare) until its own keys leave the window.
// A source alone therefore holds at most half the register (its share if
// that is more), and the others always find room unless many sources
// fill it together (33, each at its share, at the default bound).
//
// Keys are forgotten in timestamp order, not arrival order, so a message
// stamped late in the window (a source's clock ahead, or one doing it on
// purpose) keeps only its own key longer, never the keys that arrived
// after it.
type Strikes struct {
	mu     sync.Mutex
	window time.Duration
	start  time.Time
	seen   map[[32]byte]bool // true: taken (Take)
	byTS   strikeHeap        // the keys of seen, earliest timestamp first
	max    int               // bound of len(byTS)
	share  int               // keys a source may hold while the register is half full
	seed   maphash.Seed
	held   map[uint64]int // keys held, by source (hashed with seed)
}

// strike holds no pointer, so the garbage collector never scans the heap.
type strike struct {
	key [32]byte
	ts  int64  // Unix ns
	src uint64 // the source, hashed with the register's random seed
}

// Default replay-register settings.
const (
	DefaultStrikeWindow = 30 * time.Second
	DefaultStrikeMax    = 1 << 16
)

// ErrReplay: a first message was seen before (wrapped with ErrRetry).
var ErrReplay = fmt.Errorf("circuit: replayed first handshake message")

// ErrReplayShare: the register is at least half full and the message's
// source holds its share of it (wrapped with ErrRetry).
var ErrReplayShare = fmt.Errorf("circuit: the source holds its share of the replay register")

// NewStrikes returns a register holding at most max keys (<= 0 means
// DefaultStrikeMax) for window (<= 0 means DefaultStrikeWindow), started
// at now.
func NewStrikes(max int, window time.Duration, now time.Time) *Strikes {
	if max <= 0 {
		max = DefaultStrikeMax
	}
	if window <= 0 {
		window = DefaultStrikeWindow
	}
	// The heap grows as first messages arrive: a node that opens few
	// circuits (most of a simulation's, or a leaf) never pays for max.
	return &Strikes{window: window, start: now, seen: make(map[[32]byte]bool), byTS: make(strikeHeap, 0, min(max, 64)), max: max,
		share: shareOf(max), seed: maphash.MakeSeed(), held: make(map[uint64]int)}
}

// shareOf is what one source may hold of a register of max keys once it
// is half full.
func shareOf(max int) int {
	if max < 64 {
		return 1
	}
	return max / 64
}

// MayPredate reports whether a first message stamped ts, which Check
// took, may have been taken already by the process before this one: the
// register starts empty, and that process took stamps up to the window
// ahead of its clock, so a message captured before a restart can come
// again stamped within the window of this register's start
// (Responder.DropEarly).
func (s *Strikes) MayPredate(ts time.Time) bool {
	return ts.Before(s.start.Add(s.window))
}

// Check records the first message with ephemeral key eph and timestamp ts
// from source (authenticated by the handshake), received at now, or
// refuses it with an error wrapping ErrRetry.
func (s *Strikes) Check(eph []byte, source string, ts, now time.Time) error {
	var key [32]byte
	copy(key[:], eph)
	src := maphash.String(s.seed, source)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case ts.Before(s.start):
		return fmt.Errorf("%w: first message stamped before this node started", ErrRetry)
	case ts.Before(now.Add(-s.window)) || ts.After(now.Add(s.window)):
		return fmt.Errorf("%w: first message stamped %s, outside ±%s of now", ErrRetry, ts.UTC().Format(time.RFC3339Nano), s.window)
	}
	if _, dup := s.seen[key]; dup {
		return fmt.Errorf("%w: %w", ErrRetry, ErrReplay)
	}
	// Forget keys whose timestamps left the window: a replay of them fails
	// the timestamp check.
	for len(s.byTS) > 0 && s.byTS[0].ts < now.Add(-s.window).UnixNano() {
		h := heap.Pop(&s.byTS).(strike)
		delete(s.seen, h.key)
		if s.held[h.src]--; s.held[h.src] <= 0 {
			delete(s.held, h.src)
		}
	}
	if len(s.seen) >= s.max/2 && s.held[src] >= s.share {
		return fmt.Errorf("%w: %w (%d of %d first messages within %s, %q holds %d)", ErrRetry, ErrReplayShare, len(s.seen), s.max, s.window, source, s.held[src])
	}
	if len(s.seen) >= s.max {
		return fmt.Errorf("%w: replay register full (%d first messages within %s)", ErrRetry, s.max, s.window)
	}
	heap.Push(&s.byTS, strike{key: key, ts: ts.UnixNano(), src: src})
	s.seen[key] = false
	s.held[src]++
	return nil
}

// Seen reports whether the register holds ephemeral key eph: a first
// message with it is a replay, refused by Check too.
func (s *Strikes) Seen(eph []byte) bool {
	var key [32]byte
	copy(key[:], eph)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, dup := s.seen[key]
	return dup
}

// Take marks ephemeral key eph, which Check recorded, as that of a first
// message this end took (accepted, with its early data). A full handshake
// of the same open that names it as abandoned (Keys.InitiateAfter) is then
// refused: the Retry its source was answered was forged on the path. A
// message Check recorded but this end then refused with Retry itself is
// not marked, and the open made again goes ahead.
func (s *Strikes) Take(eph []byte) {
	if len(eph) != 32 {
		return // a full handshake's: never recorded
	}
	var key [32]byte
	copy(key[:], eph)
	s.mu.Lock()
	if _, ok := s.seen[key]; ok {
		s.seen[key] = true
	}
	s.mu.Unlock()
}

// Taken reports whether the register holds eph marked taken (Take); a nil
// register holds none.
func (s *Strikes) Taken(eph []byte) bool {
	if s == nil {
		return false
	}
	var key [32]byte
	copy(key[:], eph)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[key]
}

// strikeHeap orders the register's keys by timestamp (container/heap).
type strikeHeap []strike

func (h strikeHeap) Len() int           { return len(h) }
func (h strikeHeap) Less(i, j int) bool { return h[i].ts < h[j].ts }
func (h strikeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *strikeHeap) Push(x any)        { *h = append(*h, x.(strike)) }
func (h *strikeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
