package node

import (
	"slices"
	"sync"
	"time"
)

// hopSuspects remembers, per destination, the next hops through which a
// circuit to it made no progress while the node kept its link to them: a
// resumable circuit's path that fell silent (circuit.ErrNoProgress), or a
// dial that got no answer through them (dial). Every dial to that
// destination tries them last, as a resuming circuit tries its own failed
// next hops last (avoidSet), for resumeAvoidFor after the last such
// failure. Routing cannot learn it: a relay that stops forwarding keeps
// its links, its routes and its probes healthy. Avoiding only reorders
// the next hops, so a destination reached only through a suspect is
// still dialled through it.
type hopSuspects struct {
	mu   sync.Mutex
	dest map[string]*avoidSet // at most maxSuspectDests
}

// maxSuspectDests bounds the destinations hopSuspects remembers; beyond
// it the one whose last failure is oldest is forgotten.
const maxSuspectDests = 1024

func newHopSuspects() *hopSuspects { return &hopSuspects{dest: map[string]*avoidSet{}} }

// add records that a circuit to dest made no progress through hop at now.
// The destination itself, linked to this node, is no suspect: its silence
// is its own, not a relay's, and every other path ends at it too
// (TestDestinationIsNotItsOwnSuspect).
func (s *hopSuspects) add(dest, hop string, now time.Time) {
	if hop == dest {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.dest[dest]
	if set == nil {
		if len(s.dest) >= maxSuspectDests {
			s.evictLocked(now)
		}
		set = newAvoidSet(resumeAvoidFor)
		s.dest[dest] = set
	}
	set.add(hop, now)
}

// forget clears hop as a suspect for dest: a circuit to dest went
// through it after all.
func (s *hopSuspects) forget(dest, hop string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if set := s.dest[dest]; set != nil {
		set.remove(hop)
	}
}

// evictLocked forgets the destinations whose suspects all expired, or
// else the one whose last failure is oldest.
func (s *hopSuspects) evictLocked(now time.Time) {
	oldest, at := "", now
	for d, set := range s.dest {
		last, ok := set.last(now)
		if !ok {
			delete(s.dest, d)
			continue
		}
		if !last.After(at) {
			oldest, at = d, last
		}
	}
	if len(s.dest) >= maxSuspectDests {
		delete(s.dest, oldest)
	}
}

// order returns the next hops toward dest to try last at now, the one
// that failed longest ago first, then those of extra (a resuming
// circuit's own, tried last of all).
func (s *hopSuspects) order(dest string, now time.Time, extra []string) []string {
	s.mu.Lock()
	set := s.dest[dest]
	s.mu.Unlock()
	if set == nil {
		return extra
	}
	out := slices.DeleteFunc(set.order(now), func(h string) bool { return slices.Contains(extra, h) })
	return append(out, extra...)
}
