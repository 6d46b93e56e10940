package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// A member whose dials time out after its address answered
// (links.ErrHandshakeSlow: a node on a CPU-starved machine) backs off like
// any failed dial and is not banned for unprovenBan as a silent address
// is: two slow handshakes on a loaded machine kept honest nodes of
// TestDegreeNeverExceedsMaxLinksWhileNodesJoin from dialling each other
// for an hour. A silent address still gets unprovenDials dials.
func TestSlowAnsweringMemberIsNotBannedLikeASilentOne(t *testing.T) {
	d := &discovery{backoff: map[string]*addrBackoff{}, proven: map[string]string{}, unproven: map[string]*addrBackoff{}}
	slow := Member{Name: "slow", LinkAddr: "127.0.0.1:1"}
	silent := Member{Name: "silent", LinkAddr: "127.0.0.1:2"}
	busy := Member{Name: "busy", LinkAddr: "127.0.0.1:3"}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	for range unprovenDials + 1 {
		d.dialFailedLocked(slow, fmt.Errorf("dial %s: %w: %w", slow.LinkAddr, links.ErrHandshakeSlow, context.DeadlineExceeded), now)
		d.dialFailedLocked(silent, fmt.Errorf("dial %s: %w", silent.LinkAddr, context.DeadlineExceeded), now)
		d.dialFailedLocked(busy, fmt.Errorf("dial %s: %w", busy.LinkAddr, links.ErrBusy), now)
	}
	// A busy refusal (the member's handshake budget spent, by a
	// stranger's flood as well) is an answer too: two banned the member
	// for an hour.
	for _, m := range []Member{slow, busy} {
		if d.memberBannedLocked(m.Name, m.LinkAddr, now) {
			t.Errorf("a member whose address answered %d dials %s is banned as unproven", unprovenDials+1, m.Name)
		}
		if w := time.Until(d.backoff[m.LinkAddr].until); w >= unprovenBan/2 {
			t.Errorf("the address that answered %s backs off for %v, the ban of a silent address", m.Name, w)
		}
	}
	if !d.memberBannedLocked(silent.Name, silent.LinkAddr, now) {
		t.Errorf("a member at a silent address is still dialled after %d failed dials", unprovenDials+1)
	}
	if w := time.Until(d.backoff[silent.LinkAddr].until); w < unprovenBan/2 {
		t.Errorf("the silent address backs off for only %v", w)
	}
}
