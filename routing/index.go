package routing

import (
	"encoding/binary"
	"iter"
	"math/rand/v2"
	"unsafe"
)

// originIndex maps names to table entries. It is an open-addressing hash
// table with linear probing over the entries' name hashes (kept in its slots),
// which are computed once per name: a Go map keyed by name hashed each
// name again and moved every key and value as the table grew, a fifth of
// the CPU time of receiving an entry at 1000 nodes. A slot is chosen by
// mixing the name hash with a seed drawn at random per index, so that a
// sender cannot pile the names it makes up onto the slots of the names in
// the table (the seed decides only where entries are kept, never what
// the engine outputs); names whose hashes collide are told apart by
// comparing them. A slot keeps the low 32 bits of the hash and the
// entry's id, so that a probe reads neither the entry nor anything but the
// side entry and the name it compares (Engine.side), which also says
// where the entry is. Slots hold no pointer, so the collector does not scan them
// (they held the entry's pointer too, twice the bytes, all scanned).
type originIndex struct {
	// The entries' ids with their name hashes, so that a probe that does
	// not match reads no entry (id 0: free). The length is a power of
	// two, or zero.
	slots []indexSlot
	n     int
	shift uint8 // 64 - log2(len(slots))
	seed  uint64
	side  *sideTable // the entries and their names, by id (Engine.side)
}

type indexSlot struct {
	h  uint32 // low bits of the name hash
	id uint32 // o.id+1; 0 for a free slot
}

const indexMinSlots = 8

// indexQuadSlots is the size up to which the index grows fourfold (grow):
// 1,024 slots of 8 bytes.
const indexQuadSlots = 1024

func newOriginIndex(side *sideTable) originIndex {
	return originIndex{seed: rand.Uint64() | 1, side: side}
}

// home is the first slot probed for hash h.
func (x *originIndex) home(h uint32) int {
	return int(((uint64(h) ^ x.seed) * 0x9e3779b97f4a7c15) >> x.shift)
}

func (x *originIndex) len() int { return x.n }

// hash is the hash under which the index keeps name (wordHash from the
// index's seed).
func (x *originIndex) hash(name string) uint64 {
	return wordHash(unsafe.Slice(unsafe.StringData(name), len(name)), x.seed)
}

// hashBytes is hash of a name not converted to a string.
func (x *originIndex) hashBytes(b []byte) uint64 { return wordHash(b, x.seed) }

// wordHash hashes a name from seed. A name of 4 to 8 bytes is read as one
// word (two overlapping 32-bit reads) and mixed with the seed by one
// multiplication; others take the FNV-1a hash of the summaries (nameHash)
// mixed the same way. nameHash for every name, a byte at a time, took 232
// million of the 11.8 billion instructions of a cold start at 1000 nodes
// (names of 5 bytes), this 150 million.
func wordHash(b []byte, seed uint64) uint64 {
	n := len(b)
	var w uint64
	if uint(n-4) <= 4 {
		w = uint64(binary.LittleEndian.Uint32(b)) | uint64(binary.LittleEndian.Uint32(b[n-4:]))<<32
	} else {
		w = nameHash(b)
	}
	h := (w ^ seed ^ uint64(n)<<56) * 0x9e3779b97f4a7c15
	return h ^ h>>32
}

// get returns the entry named name, or nil.
func (x *originIndex) get(name string) *origin {
	return x.lookup(x.hash(name), name)
}

// getBytes is get for a name that has not been converted to a string,
// returning the entry's side entry (its name with it), or nil.
func (x *originIndex) getBytes(name []byte) *originSide {
	return lookupIn(x, x.hashBytes(name), name)
}

func (x *originIndex) lookup(h uint64, name string) *origin {
	if s := lookupIn(x, h, name); s != nil {
		return x.side.entry(s)
	}
	return nil
}

// lookupIn returns the side entry of the entry named name, of hash h, or
// nil.
func lookupIn[T string | []byte](x *originIndex, h uint64, name T) *originSide {
	if x.n == 0 {
		return nil
	}
	mask := len(x.slots) - 1
	for i := x.home(uint32(h)); ; i = (i + 1) & mask {
		s := x.slots[i]
		if s.id == 0 {
			return nil
		}
		if s.h == uint32(h) {
			if e := x.side.at(s.id - 1); e.ref.origin == string(name) {
				return e
			}
		}
	}
}

// insert adds o, whose name (of hash h) is not in the index and whose
// side entry points to it.
func (x *originIndex) insert(h uint64, o *origin) {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.grow()
	}
	mask := len(x.slots) - 1
	i := x.home(uint32(h))
	for x.slots[i].id != 0 {
		i = (i + 1) & mask
	}
	x.slots[i] = indexSlot{uint32(h), o.id + 1}
	x.n++
}

func (x *originIndex) grow() {
	old := x.slots
	// Four times larger while small, so that a table filling from
	// scratch (a cold start) moves a third of the entries: growing took
	// 0.11 s of the 0.25 s of adding origins in a profile of a cold start
	// at 1000 nodes. Beyond indexQuadSlots, twice, so
	// that a large table takes at most twice the slots it needs.
	size := max(indexMinSlots, 2*len(old))
	if len(old) < indexQuadSlots {
		size = max(indexMinSlots, 4*len(old))
	}
	x.slots = make([]indexSlot, size)
	x.shift = uint8(64 - log2(size))
	mask := size - 1
	for _, s := range old {
		if s.id == 0 {
			continue
		}
		i := x.home(s.h)
		for x.slots[i].id != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = s
	}
}

func log2(n int) int {
	b := 0
	for 1<<b < n {
		b++
	}
	return b
}

// remove deletes o, whose name has hash h, from the index (nothing if it
// is not there), moving back the entries that follow it in its run so that
// no lookup stops short.
func (x *originIndex) remove(h uint64, o *origin) {
	if x.n == 0 {
		return
	}
	mask := len(x.slots) - 1
	i := x.home(uint32(h))
	for x.slots[i].id != o.id+1 {
		if x.slots[i].id == 0 {
			return
		}
		i = (i + 1) & mask
	}
	x.slots[i] = indexSlot{}
	x.n--
	// Backward-shift deletion: an entry j after the hole i moves into it
	// unless its home lies cyclically in (i, j].
	for j := (i + 1) & mask; x.slots[j].id != 0; j = (j + 1) & mask {
		h := x.home(x.slots[j].h)
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			x.slots[i], x.slots[j] = x.slots[j], indexSlot{}
			i = j
		}
	}
	if x.n == 0 {
		x.slots, x.shift = nil, 0 // a table emptied lets its slots go
	}
}

// all yields every entry, in no particular order.
func (x *originIndex) all() iter.Seq[*origin] {
	return func(yield func(*origin) bool) {
		for _, s := range x.slots {
			if s.id != 0 && !yield(x.side.entry(x.side.at(s.id-1))) {
				return
			}
		}
	}
}
