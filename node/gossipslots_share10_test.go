package node

import (
	"net/netip"
	"testing"
	"time"
)

// count is how many streams hold slots.
func (s *streamSlots) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held)
}

// remotes are the remote addresses of the streams holding slots.
func (s *streamSlots) remotes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.held {
		out = append(out, c.RemoteAddr().String())
	}
	return out
}

// TestGossipStreamSlotsWorkConserving: the streams of one source prefix
// (members on one host, or behind one NAT) take every free slot, and
// those beyond its share give way to a prefix holding fewer, so a
// flooding prefix cannot keep another out; a stream whose first bytes
// are late keeps its slot until a new stream needs one.
func TestGossipStreamSlotsWorkConserving(t *testing.T) {
	now := time.Now()
	host := netip.MustParsePrefix("127.0.0.1/32")
	other := netip.MustParsePrefix("192.0.2.7/32")
	var s streamSlots
	stream := func(p netip.Prefix) *guardConn { return &guardConn{inbound: true, prefix: p} }
	admit := func(c *guardConn, at time.Time, wantWhy, wantReason string) *guardConn {
		t.Helper()
		ev, why, reason := s.admit(c, at)
		if why != wantWhy || reason != wantReason {
			t.Fatalf("a stream of %v: took a slot from a stream refused %q, was refused %q; want %q, %q", c.prefix, why, reason, wantWhy, wantReason)
		}
		return ev
	}
	fill := func(p netip.Prefix, at time.Time, arrived, answered bool) []*guardConn {
		t.Helper()
		s = streamSlots{byPrefix: make(map[netip.Prefix]int)}
		var cs []*guardConn
		for range gossipStreams {
			c := stream(p)
			admit(c, at, "", "")
			if arrived {
				s.arrived(c)
			}
			if answered {
				s.answered(c)
			}
			cs = append(cs, c)
		}
		return cs
	}

	// Honest members of one host: every slot is theirs while free, and
	// one beyond the slots is refused, taking no slot of its own prefix.
	fill(host, now, true, false)
	admit(stream(host), now, "", refuseShare)

	// A flooding prefix holds every slot, waiting: another prefix's
	// streams take its slots until both hold as many.
	flood := fill(host, now, true, false)
	for i := range gossipStreams / 2 {
		if ev := admit(stream(other), now, refuseEvicted, ""); ev != flood[i] {
			t.Fatalf("stream %d of %v took the slot of %p, want the flood's oldest waiting, %p", i, other, ev, flood[i])
		}
	}
	admit(stream(other), now, "", refuseShare)
	if s.byPrefix[host] != gossipStreams/2 || s.byPrefix[other] != gossipStreams/2 || s.count() != gossipStreams {
		t.Errorf("%v holds %d slots and %v %d (of %d held), want %d each", host, s.byPrefix[host], other, s.byPrefix[other], s.count(), gossipStreams/2)
	}

	// A flooding prefix whose streams memberlist answered (it reads the
	// answers slowly): another prefix still takes its share.
	flood = fill(host, now, true, true)
	for i := range gossipStreamShare {
		if ev := admit(stream(other), now, refuseEvicted, ""); ev != flood[i] {
			t.Fatalf("stream %d of %v took the slot of %p, want the flood's oldest, %p", i, other, ev, flood[i])
		}
	}
	admit(stream(other), now, "", refuseShare)

	// Streams whose first bytes have not come keep their slots past
	// gossipFirstBytes while slots are free, and give them up, oldest
	// first, to new streams of any prefix, their own included.
	s = streamSlots{byPrefix: make(map[netip.Prefix]int)}
	slow := stream(host)
	admit(slow, now, "", "")
	later := now.Add(10 * gossipFirstBytes)
	var rest []*guardConn
	for range gossipStreams - 1 {
		c := stream(host)
		admit(c, later, "", "")
		rest = append(rest, c)
	}
	if !slow.slotted {
		t.Fatalf("a stream whose first bytes are late lost its slot while slots were free")
	}
	if ev := admit(stream(host), later, refuseSlow, ""); ev != slow {
		t.Fatalf("a new stream of a full table took the slot of %p, want the late stream's, %p", ev, slow)
	}
	admit(stream(host), later, "", refuseShare) // the others are not late yet
	if ev := admit(stream(host), later.Add(gossipFirstBytes), refuseSlow, ""); ev != rest[0] {
		t.Fatalf("a new stream took the slot of %p, want the oldest late one, %p", ev, rest[0])
	}
}
