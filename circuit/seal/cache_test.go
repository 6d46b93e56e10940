package seal

import (
	"fmt"
	"testing"
	"time"
)

// limitCaches lowers k's bound of its identity caches to n.
func limitCaches(k *Keys, n int) { k.dh.known.max, k.seen.m.max = n, n }

// cachedOf counts the entries of name in k's caches of verified
// identities and static-static secrets.
func cachedOf(k *Keys, name string, _ *mesh) (seen, known int) {
	k.seen.mu.Lock()
	seen = len(k.seen.m.names[name])
	k.seen.mu.Unlock()
	k.dh.mu.Lock()
	known = len(k.dh.known.names[name])
	k.dh.mu.Unlock()
	return seen, known
}

// A name's newest entry replaces its oldest beyond keysPerName; a full
// table drops the oldest entry of the name holding the most, the new
// entry's own name when none holds more; every name's index follows.
func TestNameCacheBounds(t *testing.T) {
	c := newNameCache[string, int](6)
	has := func(keys ...string) {
		t.Helper()
		for _, k := range keys {
			if _, ok := c.get(k); !ok {
				t.Fatalf("%s dropped; held: %v", k, c.names)
			}
		}
	}
	hasNot := func(keys ...string) {
		t.Helper()
		for _, k := range keys {
			if _, ok := c.get(k); ok {
				t.Fatalf("%s kept; held: %v", k, c.names)
			}
		}
	}
	for i := 1; i <= keysPerName+1; i++ {
		c.add("a", fmt.Sprint("a", i), i)
	}
	hasNot("a1")
	has("a2", "a3", "a4", "a5")
	c.add("b", "b1", 1)
	c.add("c", "c1", 1)
	has("a2", "b1", "c1")
	c.add("d", "d1", 1) // full: a holds the most
	hasNot("a2")
	c.add("e", "e1", 1)
	hasNot("a3")
	c.add("b", "b2", 2) // a (2) and b (1, then 2): a's oldest goes
	hasNot("a4")
	has("a5", "b1", "b2", "c1", "d1", "e1")
	c.add("c", "c2", 2) // b holds the most
	hasNot("b1")
	has("a5", "b2", "c1", "c2", "d1", "e1")
	c.add("c", "c3", 3) // c holds the most
	hasNot("c1")
	has("a5", "b2", "c2", "c3", "d1", "e1")
	if !c.set("b2", 10) || c.set("x", 1) {
		t.Fatal("set: b2 not found or x found")
	}
	c.add("z", "b2", 11) // there already: its name kept
	if v, _ := c.get("b2"); v != 11 || len(c.names["z"]) != 0 || c.len() != 6 {
		t.Fatalf("b2 = %d, z holds %d, %d entries", v, len(c.names["z"]), c.len())
	}
	c.add("f", "f1", 1) // every name holds one but c: c's oldest goes
	hasNot("c2")
	has("a5", "b2", "c3", "d1", "e1", "f1")
	c.add("a", "a6", 6) // every name holds one: a's own oldest goes
	hasNot("a5")
	has("a6", "b2", "c3", "d1", "e1", "f1")
	n := 0
	for name, ks := range c.names {
		n += len(ks)
		if _, ok := c.holding[len(ks)][name]; !ok {
			t.Fatalf("%s holds %d, not indexed so", name, len(ks))
		}
	}
	for i, names := range c.holding[1:] {
		for name := range names {
			if len(c.names[name]) != i+1 {
				t.Fatalf("%s indexed as holding %d, holds %d", name, i+1, len(c.names[name]))
			}
		}
	}
	if n != c.len() {
		t.Fatalf("names index %d entries, table holds %d", n, c.len())
	}
}

// A node that renews its certificate (a new key and key record) is
// served at once with each new key and its new identity is cached, more
// times than keysPerName, with d's caches full: its renewals replace its
// own entries, never the other sources'.
func TestRenewedKeysServedAndCached(t *testing.T) {
	names := []string{"d", "h"}
	for i := range 7 {
		names = append(names, "s"+string(rune('0'+i)))
	}
	mesh := newMesh(t, names...)
	d := mesh.keys["d"]
	limitCaches(d, len(names)-1)
	strikes := NewStrikes(1<<20, time.Hour, time.Now().Add(-time.Second))
	for _, n := range names[1:] {
		warm(t, mesh.keys[n], d, strikes)
	}
	for i := range 2 * keysPerName {
		id, err := mesh.ca.Issue("h", 0)
		if err != nil {
			t.Fatal(err)
		}
		h, err := NewKeys(id)
		if err != nil {
			t.Fatal(err)
		}
		if _, v := openIK(t, h, d, strikes); v != 1 {
			t.Fatalf("renewal %d: h's first open verified %d identities, want 1", i, v)
		}
		if _, v := openIK(t, h, d, strikes); v != 0 {
			t.Fatalf("renewal %d: h's second open verified %d identities, want 0 (cached)", i, v)
		}
		if seen, known := cachedOf(d, "h", mesh); seen > keysPerName || known > keysPerName {
			t.Fatalf("renewal %d: d holds %d identities and %d secrets of h", i, seen, known)
		}
	}
	for _, n := range names[2:] {
		if x, v := openIK(t, mesh.keys[n], d, strikes); x != cachedOpenX25519s || v != 0 {
			t.Fatalf("%s's open after h's renewals cost d %d X25519 and %d identity checks, want %d and 0", n, x, v, cachedOpenX25519s)
		}
	}
}
