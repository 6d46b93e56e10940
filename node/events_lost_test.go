package node

import (
	"strconv"
	"testing"
	"time"
)

// A node that loses more peers within a minute than it remembers (a big
// mesh cut off, or torn down) does not walk its whole table of recently
// lost peers on each of them: the table is swept only when an entry can
// have expired. Peers lost over a minute ago are still forgotten to make
// room.
func TestLostPeersSweptOnlyWhenSomethingExpires(t *testing.T) {
	h := newEventHub(nil)
	down := func(peer string, at time.Time) {
		h.mu.Lock()
		h.noteLocked(Event{Kind: PeerDown, Peer: peer, Time: at})
		h.mu.Unlock()
	}
	old := time.Now().Add(-2 * lostMemory)
	for i := range maxLostPeers / 2 {
		down("old"+strconv.Itoa(i), old)
	}
	now := time.Now()
	for i := range 5 * maxLostPeers {
		down("new"+strconv.Itoa(i), now)
	}
	if h.sweeps > 2 {
		t.Errorf("%d peers down within a minute swept the lost table %d times, want at most 2 (one to forget the expired entries, none while nothing can expire)", 5*maxLostPeers, h.sweeps)
	}
	if h.recentlyLost("old0") {
		t.Errorf("a peer lost two minutes ago is still remembered in a full table")
	}
	if len(h.lost) > maxLostPeers {
		t.Errorf("the lost table holds %d peers, bound %d", len(h.lost), maxLostPeers)
	}
	if !h.recentlyLost("new0") {
		t.Errorf("a peer lost just now is not remembered")
	}
}
