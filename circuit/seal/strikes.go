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
//
// The register also holds the keys that full handshakes' first messages
// name as abandoned (Abandon), so that such a flight arriving late is
// refused as a replay. Those names have a part of their own, a quarter of
// the bound (maxNamedOf), with the same per-source rule (a 64th of that
// part, at least MaxAbandoned, once it is half full): they never count
// against the keys of first messages, never evict one, and an open whose
// names find no room is refused with Retry.
type Strikes struct {
	mu     sync.Mutex
	window time.Duration
	start  time.Time
	seen   map[[32]byte]strikeState
	byTS   strikeHeap // the keys of seen, earliest timestamp first
	max    int        // bound of the keys of first messages held
	share  int        // keys a source may hold while the register is half full
	seed   maphash.Seed
	held   map[uint64]int // keys held, by source (hashed with seed), names apart

	named      int // entries of byTS that Abandon added (their part)
	maxNamed   int // bound of named
	namedShare int // names a source may hold while their part is half full
	namedSeed  maphash.Seed
}

// strikeState is what the register knows of a key.
type strikeState uint8

const (
	checked   strikeState = iota // a first message Check recorded
	taken                        // one this end took (Take)
	abandoned                    // named abandoned by a full handshake (Abandon)
)

// strike holds no pointer, so the garbage collector never scans the heap.
type strike struct {
	key   [32]byte
	ts    int64  // Unix ns
	src   uint64 // the source, hashed with the register's random seed (namedSeed for a name)
	named bool   // added by Abandon: counted in named
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
	maxNamed := maxNamedOf(max)
	return &Strikes{window: window, start: now, seen: make(map[[32]byte]strikeState), byTS: make(strikeHeap, 0, min(max, 64)), max: max,
		share: shareOf(max), seed: maphash.MakeSeed(), held: make(map[uint64]int),
		maxNamed: maxNamed, namedShare: namedShareOf(maxNamed), namedSeed: maphash.MakeSeed()}
}

// maxNamedOf is how many names of abandoned flights a register bounded
// to keys first messages holds besides them: a quarter, at least what
// one full handshake names.
func maxNamedOf(keys int) int {
	return max(keys/4, MaxAbandoned)
}

// namedShareOf is what one source may hold of names once their part,
// maxNamed, is half full: at least what one full handshake names.
func namedShareOf(maxNamed int) int {
	return max(shareOf(maxNamed), MaxAbandoned)
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
	s.forgetLocked(now)
	if n := len(s.byTS) - s.named; n >= s.max/2 && s.held[src] >= s.share {
		return fmt.Errorf("%w: %w (%d of %d first messages within %s, %q holds %d)", ErrRetry, ErrReplayShare, n, s.max, s.window, source, s.held[src])
	}
	if len(s.byTS)-s.named >= s.max {
		return fmt.Errorf("%w: replay register full (%d first messages within %s)", ErrRetry, s.max, s.window)
	}
	heap.Push(&s.byTS, strike{key: key, ts: ts.UnixNano(), src: src})
	s.seen[key] = checked
	s.held[src]++
	return nil
}

// forgetLocked forgets the keys whose timestamps left the window at now:
// a replay of them fails the timestamp check. A name of an abandoned
// flight is held with a timestamp a window ahead (Abandon). s.mu held.
func (s *Strikes) forgetLocked(now time.Time) {
	for len(s.byTS) > 0 && s.byTS[0].ts < now.Add(-s.window).UnixNano() {
		h := heap.Pop(&s.byTS).(strike)
		delete(s.seen, h.key)
		if s.held[h.src]--; s.held[h.src] <= 0 {
			delete(s.held, h.src)
		}
		if h.named {
			s.named--
		}
	}
}

// ErrAbandonedFull: the names of abandoned flights a full handshake's
// first message carries find no room in the register (wrapped with
// ErrRetry).
var ErrAbandonedFull = fmt.Errorf("circuit: no room in the replay register for the flights named abandoned")

// Abandon records the ephemeral keys names (32 bytes each, at most
// MaxAbandoned) that a full handshake's first message from source names
// as first messages of the same open abandoned after a Retry
// (Keys.InitiateAfter), read at now. It reports whether one of them is a
// message this end took (Take): a relay forged the Retry. Each name the
// register does not hold is recorded, and every one not taken is marked,
// so that Check and Seen refuse a first message with it (a replay) and
// Take refuses one Check recorded before: a relay that kept the flight
// and sends it on after the open made again cannot have it taken as well.
// A flight's stamp is encrypted: the name is kept until twice the window
// after now, past the last moment Check accepts a flight stamped up to a
// window ahead of now (a source whose clock runs further ahead than that
// is not covered: its flight is refused when it arrives on time, but
// one kept until this end's clock caught up is not).
//
// The first message of a full handshake authenticates nothing, so anyone
// who can send one names what it likes: the names are bounded apart from
// the keys of first messages (maxNamedOf, with per-source shares as in
// Check), and names that find no room refuse the open with an error
// wrapping ErrRetry, recording none. A name matters only to the flight
// with that ephemeral key, which only those on its path have seen, and
// they can drop it anyway. A nil register records nothing.
func (s *Strikes) Abandon(names [][]byte, source string, now time.Time) (took bool, err error) {
	if s == nil || len(names) == 0 {
		return false, nil
	}
	src := maphash.String(s.namedSeed, source)
	keys := make([][32]byte, len(names))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetLocked(now)
	add := 0
	for i, n := range names {
		copy(keys[i][:], n)
		if _, ok := s.seen[keys[i]]; !ok {
			add++
		}
	}
	if add > 0 {
		if s.named >= s.maxNamed/2 && s.held[src]+add > s.namedShare {
			return false, fmt.Errorf("%w: %w (%d of %d names within %s, %q holds %d)", ErrRetry, ErrAbandonedFull, s.named, s.maxNamed, 2*s.window, source, s.held[src])
		}
		if s.named+add > s.maxNamed {
			return false, fmt.Errorf("%w: %w (%d names within %s)", ErrRetry, ErrAbandonedFull, s.named, 2*s.window)
		}
	}
	for _, key := range keys {
		switch st, ok := s.seen[key]; {
		case !ok:
			heap.Push(&s.byTS, strike{key: key, ts: now.Add(s.window).UnixNano(), src: src, named: true})
			s.seen[key] = abandoned
			s.held[src]++
			s.named++
		case st == taken:
			took = true
		default:
			s.seen[key] = abandoned
		}
	}
	return took, nil
}

// Seen reports whether the register holds ephemeral key eph (a first
// message's, or a name of an abandoned one): a first message with it is
// a replay, refused by Check too.
func (s *Strikes) Seen(eph []byte) bool {
	var key [32]byte
	copy(key[:], eph)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, dup := s.seen[key]
	return dup
}

// Take marks ephemeral key eph, which Check recorded, as that of a first
// message this end takes (accepts, with its early data). A full handshake
// of the same open that names it as abandoned (Keys.InitiateAfter) is then
// refused: the Retry its source was answered was forged on the path. A
// message Check recorded but this end then refused with Retry itself is
// not marked, and the open made again goes ahead.
//
// It reports false, marking nothing, when a full handshake named eph
// abandoned since Check recorded it (Abandon): the open made again goes
// ahead, and the caller must refuse this message (with Retry, as a
// replay). A full handshake's eph (nil) is never recorded: true.
func (s *Strikes) Take(eph []byte) bool {
	if len(eph) != 32 {
		return true
	}
	var key [32]byte
	copy(key[:], eph)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st, ok := s.seen[key]; {
	case st == abandoned:
		return false
	case ok:
		s.seen[key] = taken
	}
	return true
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
