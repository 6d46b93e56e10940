package node

import (
	"context"
	"testing"
	"time"
)

// A failed dial of the holder at its own address, after a made-up name's
// claim of the address proved the holder there, backs the address off for
// the holder as any failed dial does, but leaves the bar on the claim.
// Before, it replaced the claim's ban of banTime with the holder's
// back-off of a second, and a starved node dialled the made-up name at
// the holder's address again once that second passed.
func TestHolderFailedDialKeepsTheBarOnClaims(t *testing.T) {
	b := Member{Name: "b", LinkAddr: "127.0.0.1:1"}
	d := &discovery{backoff: map[string]*addrBackoff{}, proven: map[string]string{}, unproven: map[string]*addrBackoff{}, vouch: true,
		members: map[string]gossipMember{b.Name: {Member: b, ok: true}}}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	d.claimFailedLocked(Member{Name: "zz", LinkAddr: b.LinkAddr}, b.Name, now)
	d.dialFailedLocked(b, context.DeadlineExceeded, now)
	if d.mayDialLocked(b.Name, b.LinkAddr, now) {
		t.Error("b is dialled at once after its own dial failed")
	}
	if !d.mayDialLocked(b.Name, b.LinkAddr, now.Add(dialMaxBackoff+time.Second)) {
		t.Errorf("b is still not dialled at its address %v after its failed dial", dialMaxBackoff+time.Second)
	}
	for _, at := range []time.Duration{dialMaxBackoff + time.Second, banTime - time.Minute} {
		if d.mayDialLocked("zz", b.LinkAddr, now.Add(at)) {
			t.Errorf("zz is dialled at b's address %v after its claim of it proved b, b's own dial there having failed since", at)
		}
	}
	if !d.mayDialLocked("zz", b.LinkAddr, now.Add(banTime+time.Second)) {
		t.Errorf("zz is still barred at b's address %v after its claim", banTime+time.Second)
	}
}
