package links

import (
	"fmt"
	"testing"
	"time"
)

// TestAbortTableRemembersSpentBucketsOnly: a peer whose bucket was spent
// finds it as it left it on its next link; the buckets of peers without
// a link that are full again are forgotten, so the table holds the peers
// linked and those refilling, however many names come and go.
func TestAbortTableRemembersSpentBucketsOnly(t *testing.T) {
	now := time.Unix(1000, 0)
	tab := newAbortTable(16) // 2 a second
	a := tab.acquire("m", now)
	for range 16 {
		if !a.take(now) {
			t.Fatal("a full bucket of 16 refused one of its first 16 tokens")
		}
	}
	if a.take(now) {
		t.Fatal("an empty bucket gave a token")
	}
	tab.release(a)
	for i := range 10000 {
		b := tab.acquire(fmt.Sprintf("p%d", i), now)
		tab.release(b)
	}
	if n := len(tab.peers); n > 2*64 {
		t.Fatalf("%d buckets held after 10,000 peers came and went with full buckets, want at most 128", n)
	}
	a = tab.acquire("m", now.Add(time.Second))
	if !a.take(now.Add(time.Second)) || !a.take(now.Add(time.Second)) || a.take(now.Add(time.Second)) {
		t.Fatal("m's new link, a second after its bucket was spent, did not find the 2 tokens earned since")
	}
}
