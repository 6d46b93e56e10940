package quic

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go/internal/protocol"
	"github.com/quic-go/quic-go/internal/qerr"
	list "github.com/quic-go/quic-go/internal/utils/linkedlist"
)

// byteInterval is an interval from one ByteCount to the other
type byteInterval struct {
	Start protocol.ByteCount
	End   protocol.ByteCount
}

var byteIntervalElementPool sync.Pool

func init() {
	byteIntervalElementPool = *list.NewPool[byteInterval]()
}

// circuitmesh: upstream keeps one queue entry per received STREAM frame, and
// every entry costs far more than its data (a map slot, the frame's own
// allocation or a pooled packet-sized buffer, a callback). A peer that sends
// 1-byte frames made each byte of flow-control window cost over a hundred
// bytes of heap. Two changes bound that:
//
//   - Frames shorter than sorterCopyThreshold are copied into buffers owned
//     by the sorter, and an owned buffer is merged with the owned entries
//     right before and after it as long as the result stays within
//     sorterMaxOwnedBuffer. The frame's own buffer is released at once.
//     Contiguous small frames, in any order, then cost about their bytes.
//     Larger frames keep upstream's zero-copy path.
//   - Entries are counted per connection (frameBudget) and the connection is
//     closed when a peer makes it buffer more than the budget allows.
//
// Which bytes are delivered, the gaps and the duplicate handling are
// unchanged; only the boundaries of queued entries differ.
const (
	// sorterCopyThreshold is the length below which frame data is copied.
	sorterCopyThreshold = 512
	// sorterMaxOwnedBuffer bounds the size of a merged, sorter-owned buffer.
	sorterMaxOwnedBuffer = 4096
	// sorterCopyMax bounds the queued data a merge copies when the entry
	// it copies is larger than what it merges into: a merge otherwise
	// copies the smaller side into the larger, so that a peer sending
	// 1-byte frames in reverse order does not make each one copy up to
	// sorterMaxOwnedBuffer bytes.
	sorterCopyMax = 256
)

type frameSorterEntry struct {
	Data   []byte
	DoneCb func()
	// owned: Data was allocated by the sorter (circuitmesh patch); it is
	// referenced nowhere else and may be appended to while queued.
	owned bool
}

// frameBudget counts the frame sorter entries of all receive streams of a
// connection (circuitmesh patch).
type frameBudget struct {
	entries atomic.Int64
	max     int64
}

// newFrameBudget returns the budget for a connection whose receive window may
// grow to maxConnWindow: 8 entries per KiB of window, at least 65536. Honest
// traffic stays far below it: a stalled reader with a full window of
// full-size frames holds about one entry per 1.2 KiB of window, and the
// densest honest pattern, 1-byte and 512-byte frames in turn, 2 per 513
// bytes (frames of 512 bytes and more are never merged).
func newFrameBudget(maxConnWindow protocol.ByteCount) *frameBudget {
	return &frameBudget{max: max(65536, 8*int64(maxConnWindow/1024))}
}

var errTooManyBufferedFrames = &qerr.TransportError{
	ErrorCode:    qerr.FlowControlError,
	ErrorMessage: "too many stream frames buffered",
}

type frameSorter struct {
	queue   map[protocol.ByteCount]frameSorterEntry
	readPos protocol.ByteCount
	gaps    *list.List[byteInterval]

	// circuitmesh patch: ownedEnds maps the end offset of each owned entry to
	// its start, to find the owned entry a new small frame continues.
	ownedEnds map[protocol.ByteCount]protocol.ByteCount
	// budget, if set, is shared by all receive streams of the connection.
	budget *frameBudget
	// copySmall enables the copying and merging of small frames; only
	// upstream's tests of exact entry boundaries turn it off.
	copySmall bool
}

var errDuplicateStreamData = errors.New("duplicate stream data")

func newFrameSorter() *frameSorter {
	s := frameSorter{
		gaps:      list.NewWithPool[byteInterval](&byteIntervalElementPool),
		queue:     make(map[protocol.ByteCount]frameSorterEntry),
		ownedEnds: make(map[protocol.ByteCount]protocol.ByteCount),
		copySmall: true,
	}
	s.gaps.PushFront(byteInterval{Start: 0, End: protocol.MaxByteCount})
	return &s
}

func (s *frameSorter) Push(data []byte, offset protocol.ByteCount, doneCb func()) error {
	err := s.push(data, offset, doneCb)
	if err == errDuplicateStreamData {
		if doneCb != nil {
			doneCb()
		}
		return nil
	}
	return err
}

func (s *frameSorter) push(data []byte, offset protocol.ByteCount, doneCb func()) error {
	if len(data) == 0 {
		return errDuplicateStreamData
	}

	start := offset
	end := offset + protocol.ByteCount(len(data))

	if end <= s.gaps.Front().Value.Start {
		return errDuplicateStreamData
	}

	startGap, startsInGap := s.findStartGap(start)
	endGap, endsInGap := s.findEndGap(startGap, end)

	startGapEqualsEndGap := startGap == endGap

	if (startGapEqualsEndGap && end <= startGap.Value.Start) ||
		(!startGapEqualsEndGap && startGap.Value.End >= endGap.Value.Start && end <= startGap.Value.Start) {
		return errDuplicateStreamData
	}

	startGapNext := startGap.Next()
	startGapEnd := startGap.Value.End // save it, in case startGap is modified
	endGapStart := endGap.Value.Start // save it, in case endGap is modified
	endGapEnd := endGap.Value.End     // save it, in case endGap is modified
	var adjustedStartGapEnd bool
	var wasCut bool

	pos := start
	var hasReplacedAtLeastOne bool
	for {
		oldEntry, ok := s.queue[pos]
		if !ok {
			break
		}
		oldEntryLen := protocol.ByteCount(len(oldEntry.Data))
		if end-pos > oldEntryLen || (hasReplacedAtLeastOne && end-pos == oldEntryLen) {
			// The existing frame is shorter than the new frame. Replace it.
			s.deleteEntry(pos, oldEntry)
			pos += oldEntryLen
			hasReplacedAtLeastOne = true
			if oldEntry.DoneCb != nil {
				oldEntry.DoneCb()
			}
		} else {
			if !hasReplacedAtLeastOne {
				return errDuplicateStreamData
			}
			// The existing frame is longer than the new frame.
			// Cut the new frame such that the end aligns with the start of the existing frame.
			data = data[:pos-start]
			end = pos
			wasCut = true
			break
		}
	}

	if !startsInGap && !hasReplacedAtLeastOne {
		// cut the frame, such that it starts at the start of the gap
		data = data[startGap.Value.Start-start:]
		start = startGap.Value.Start
		wasCut = true
	}
	if start <= startGap.Value.Start {
		if end >= startGap.Value.End {
			// The frame covers the whole startGap. Delete the gap.
			s.gaps.Remove(startGap)
		} else {
			startGap.Value.Start = end
		}
	} else if !hasReplacedAtLeastOne {
		startGap.Value.End = start
		adjustedStartGapEnd = true
	}

	if !startGapEqualsEndGap {
		s.deleteConsecutive(startGapEnd)
		var nextGap *list.Element[byteInterval]
		for gap := startGapNext; gap.Value.End < endGapStart; gap = nextGap {
			nextGap = gap.Next()
			s.deleteConsecutive(gap.Value.End)
			s.gaps.Remove(gap)
		}
	}

	if !endsInGap && start != endGapEnd && end > endGapEnd {
		// cut the frame, such that it ends at the end of the gap
		data = data[:endGapEnd-start]
		end = endGapEnd
		wasCut = true
	}
	if end == endGapEnd {
		if !startGapEqualsEndGap {
			// The frame covers the whole endGap. Delete the gap.
			s.gaps.Remove(endGap)
		}
	} else {
		if startGapEqualsEndGap && adjustedStartGapEnd {
			// The frame split the existing gap into two.
			s.gaps.InsertAfter(byteInterval{Start: end, End: startGapEnd}, startGap)
		} else if !startGapEqualsEndGap {
			endGap.Value.Start = end
		}
	}

	if wasCut && len(data) < protocol.MinStreamFrameBufferSize {
		newData := make([]byte, len(data))
		copy(newData, data)
		data = newData
		if doneCb != nil {
			doneCb()
			doneCb = nil
		}
	}

	if s.gaps.Len() > protocol.MaxStreamFrameSorterGaps {
		return errors.New("too many gaps in received data")
	}

	// A frame at the read position with nothing queued is read next (the
	// reader keeps up): it takes upstream's path, uncopied, and at most one
	// such entry is queued ahead of the owned ones.
	if s.copySmall && len(data) < sorterCopyThreshold && (start != s.readPos || len(s.queue) > 0) {
		s.storeOwned(start, data)
		if doneCb != nil {
			doneCb()
		}
	} else {
		s.addEntry(start, frameSorterEntry{Data: data, DoneCb: doneCb})
	}
	if s.budget != nil && s.budget.entries.Load() > s.budget.max {
		return errTooManyBufferedFrames
	}
	return nil
}

// storeOwned copies data, which starts at offset start, into a sorter-owned
// buffer, merging it with the owned entries ending at start and starting at
// its end while the merged buffer stays within sorterMaxOwnedBuffer.
// The range [start, start+len(data)) must not be covered by any entry.
func (s *frameSorter) storeOwned(start protocol.ByteCount, data []byte) {
	end := start + protocol.ByteCount(len(data))
	next, hasNext := s.queue[end]
	hasNext = hasNext && next.owned && len(data)+len(next.Data) <= sorterMaxOwnedBuffer
	// mergeNext: whether an entry of n bytes takes next in, copying it.
	mergeNext := func(n int) bool {
		return hasNext && n+len(next.Data) <= sorterMaxOwnedBuffer && (len(next.Data) <= max(n, sorterCopyMax))
	}

	if prevStart, ok := s.ownedEnds[start]; ok {
		prev := s.queue[prevStart]
		if len(prev.Data)+len(data) <= sorterMaxOwnedBuffer {
			// Extend prev in place: same key, same count.
			delete(s.ownedEnds, start)
			prev.Data = append(prev.Data, data...)
			if mergeNext(len(prev.Data)) {
				s.deleteEntry(end, next)
				prev.Data = append(prev.Data, next.Data...)
			}
			s.queue[prevStart] = prev
			s.ownedEnds[prevStart+protocol.ByteCount(len(prev.Data))] = prevStart
			return
		}
	}
	hasNext = mergeNext(len(data))
	size := len(data)
	if hasNext {
		size += len(next.Data)
	}
	buf := make([]byte, len(data), size)
	copy(buf, data)
	if hasNext {
		s.deleteEntry(end, next)
		buf = append(buf, next.Data...)
	}
	s.addEntry(start, frameSorterEntry{Data: buf, owned: true})
}

// addEntry queues an entry at offset pos and counts it.
func (s *frameSorter) addEntry(pos protocol.ByteCount, e frameSorterEntry) {
	s.queue[pos] = e
	if e.owned {
		s.ownedEnds[pos+protocol.ByteCount(len(e.Data))] = pos
	}
	if s.budget != nil {
		s.budget.entries.Add(1)
	}
}

// deleteEntry removes the entry e queued at offset pos, without calling its
// DoneCb.
func (s *frameSorter) deleteEntry(pos protocol.ByteCount, e frameSorterEntry) {
	delete(s.queue, pos)
	if e.owned {
		delete(s.ownedEnds, pos+protocol.ByteCount(len(e.Data)))
	}
	if s.budget != nil {
		s.budget.entries.Add(-1)
	}
}

// drop releases every queued entry (circuitmesh patch). It is used when the
// queued data can no longer be read, so that it neither stays in memory nor
// counts against the connection's budget.
func (s *frameSorter) drop() {
	for pos, e := range s.queue {
		s.deleteEntry(pos, e)
		if e.DoneCb != nil {
			e.DoneCb()
		}
	}
}

func (s *frameSorter) findStartGap(offset protocol.ByteCount) (*list.Element[byteInterval], bool) {
	for gap := s.gaps.Front(); gap != nil; gap = gap.Next() {
		if offset >= gap.Value.Start && offset <= gap.Value.End {
			return gap, true
		}
		if offset < gap.Value.Start {
			return gap, false
		}
	}
	panic("no gap found")
}

func (s *frameSorter) findEndGap(startGap *list.Element[byteInterval], offset protocol.ByteCount) (*list.Element[byteInterval], bool) {
	for gap := startGap; gap != nil; gap = gap.Next() {
		if offset >= gap.Value.Start && offset < gap.Value.End {
			return gap, true
		}
		if offset < gap.Value.Start {
			return gap.Prev(), false
		}
	}
	panic("no gap found")
}

// deleteConsecutive deletes consecutive frames from the queue, starting at pos
func (s *frameSorter) deleteConsecutive(pos protocol.ByteCount) {
	for {
		oldEntry, ok := s.queue[pos]
		if !ok {
			break
		}
		oldEntryLen := protocol.ByteCount(len(oldEntry.Data))
		s.deleteEntry(pos, oldEntry)
		if oldEntry.DoneCb != nil {
			oldEntry.DoneCb()
		}
		pos += oldEntryLen
	}
}

func (s *frameSorter) Pop() (protocol.ByteCount, []byte, func()) {
	entry, ok := s.queue[s.readPos]
	if !ok {
		return s.readPos, nil, nil
	}
	s.deleteEntry(s.readPos, entry)
	offset := s.readPos
	s.readPos += protocol.ByteCount(len(entry.Data))
	if s.gaps.Front().Value.End <= s.readPos {
		panic("frame sorter BUG: read position higher than a gap")
	}
	return offset, entry.Data, entry.DoneCb
}

// HasMoreData says if there is any more data queued at *any* offset.
func (s *frameSorter) HasMoreData() bool {
	return len(s.queue) > 0
}

var errTooLittleData = errors.New("too little data")

// Peek copies len(p) consecutive bytes starting at offset into p, without removing them.
// It is only possible to peek from an offset where a frame starts.
//
// If there isn't enough consecutive data available, errTooLittleData is returned.
func (s *frameSorter) Peek(offset protocol.ByteCount, p []byte) error {
	if len(p) == 0 {
		return nil
	}

	// first, check if we have enough consecutive data available
	pos := offset
	remaining := len(p)
	for remaining > 0 {
		entry, ok := s.queue[pos]
		if !ok {
			return errTooLittleData
		}
		entryLen := len(entry.Data)
		if remaining <= entryLen {
			break // enough data available
		}
		remaining -= entryLen
		pos += protocol.ByteCount(entryLen)
	}

	pos = offset
	var copied int
	for copied < len(p) {
		entry := s.queue[pos] // the entry is guaranteed to exist from the check above
		copied += copy(p[copied:], entry.Data)
		pos += protocol.ByteCount(len(entry.Data))
	}
	return nil
}
