package seal

import (
	"fmt"
	"testing"
	"time"
)

// held counts the entries of k's caches of verified identities and
// static-static secrets.
func held(k *Keys) (seen, known int) {
	k.seen.mu.Lock()
	seen = k.seen.m.len()
	k.seen.mu.Unlock()
	k.dh.mu.Lock()
	known = k.dh.known.len()
	k.dh.mu.Unlock()
	return seen, known
}

// Honest sources beyond the bound of d's caches, then a member opening
// with fresh keys of its own name, push entries out of d's caches of peer
// identities: CacheStats counts each entry dropped, by whether it was of
// another name than the new entry's, and the count equals the identities
// d verified less those it still holds. Keys that replace d's (a renewed
// certificate) and continue its counts start from d's totals, and
// evictions from either, d's included after the swap, add to both.
func TestCacheEvictionsCounted(t *testing.T) {
	const (
		bound  = 8
		honest = 12
		fresh  = 6
	)
	names := []string{"d", "m", "late"}
	for i := range honest {
		names = append(names, fmt.Sprint("h", i))
	}
	mesh := newMesh(t, names...)
	d := mesh.keys["d"]
	limitCaches(d, bound)
	strikes := NewStrikes(1<<20, time.Hour, time.Now().Add(-time.Second))
	check := func(k *Keys, what string, want CacheStats) {
		t.Helper()
		if got := k.CacheStats(); got != want {
			t.Fatalf("%s: CacheStats %+v, want %+v", what, got, want)
		}
	}
	// evictedOf is what d's caches dropped, counted apart from the
	// counters: identities it verified (each stored once) less those held.
	evictedOf := func(k *Keys, verified uint64) uint64 {
		seen, _ := held(k)
		return verified - uint64(seen)
	}

	var verified uint64
	for _, n := range names[3:] {
		_, v := openIK(t, mesh.keys[n], d, strikes)
		verified += v
	}
	// Each honest source's identity and secret came in as one entry; the
	// caches held bound, so each one beyond dropped another name's.
	want := CacheStats{Identities: CacheEvictions{Other: honest - bound}, Secrets: CacheEvictions{Other: honest - bound}}
	check(d, fmt.Sprintf("after %d honest sources' opens to d (caches of %d)", honest, bound), want)
	if e := evictedOf(d, verified); e != honest-bound {
		t.Fatalf("d verified %d identities and holds %d fewer, want %d", verified, e, honest-bound)
	}

	// m's first fresh key takes an honest source's entry (every name
	// holds one), the others m's own.
	for range fresh {
		_, v := openIK(t, memberKeys(t, mesh.keys["m"].id), d, strikes)
		verified += v
	}
	want.Identities.Other++
	want.Secrets.Other++
	want.Identities.Own += fresh - 1
	want.Secrets.Own += fresh - 1
	check(d, fmt.Sprintf("after m's %d opens with fresh keys", fresh), want)
	if e := evictedOf(d, verified); e != want.Identities.Own+want.Identities.Other {
		t.Fatalf("d verified %d identities and holds %d fewer, CacheStats counts %+v", verified, e, want.Identities)
	}
	t.Logf("d verified %d identities into caches of %d: %+v", verified, bound, d.CacheStats())

	// d's certificate is renewed: new keys, empty caches, the counts go on.
	id, err := mesh.ca.Issue("d", 0)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := NewKeys(id)
	if err != nil {
		t.Fatal(err)
	}
	limitCaches(d2, bound)
	d2.ContinueStats(d)
	check(d2, "renewed keys before any handshake", want)
	// An open still answered with d's old keys after the swap: its
	// entry takes m's oldest (m holds the most).
	openIK(t, mesh.keys["late"], d, strikes)
	want.Identities.Other++
	want.Secrets.Other++
	check(d2, "renewed keys after an open to the old ones", want)
	var verified2 uint64
	for _, n := range names[3:] {
		_, v := openIK(t, mesh.keys[n], d2, strikes)
		verified2 += v
	}
	want.Identities.Other += honest - bound
	want.Secrets.Other += honest - bound
	check(d2, "renewed keys after the honest sources' opens", want)
	check(d, "old keys after the honest sources' opens to the renewed ones", want)
	if e := evictedOf(d2, verified2); e != honest-bound {
		t.Fatalf("renewed keys verified %d identities and hold %d fewer, want %d", verified2, e, honest-bound)
	}
	t.Logf("after the swap: %+v", d2.CacheStats())
}
