package node

import (
	"testing"
)

// A member renews its certificate (a new key, so a new end-to-end
// identity) and opens a circuit to b with each: b's caches of peer
// identities hold at most 4 of one node name, so each identity beyond
// replaces one of the member's own, and circuitmesh_seal_cache_evictions_total
// counts it. b's own renewal replaces its keys and empties its caches; the
// counter goes on from where it was, and counts the evictions of the new
// keys on top.
func TestSealCacheEvictionsMetricSurvivesRenewal(t *testing.T) {
	const perName = 4 // the seal caches' bound of entries per node name
	c := newCluster(t, true)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	a, b := c.nodes["a"], c.nodes["b"]
	evicted := func(cache string) float64 {
		t.Helper()
		fams, err := b.metrics.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != "circuitmesh_seal_cache_evictions_total" {
				continue
			}
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, lp := range m.GetLabel() {
					labels[lp.GetName()] = lp.GetValue()
				}
				if labels["cache"] == cache && labels["victim"] == "same_name" {
					return m.GetCounter().GetValue()
				}
			}
		}
		t.Fatalf("b exports no circuitmesh_seal_cache_evictions_total{cache=%q,victim=\"same_name\"}", cache)
		return 0
	}
	check := func(what string, want float64) {
		t.Helper()
		for _, cache := range []string{"identities", "secrets"} {
			if got := evicted(cache); got != want {
				t.Fatalf("%s: b counts %v evictions of a's own entries from its %s cache, want %v", what, got, cache, want)
			}
		}
	}
	// renewAndOpen gives a a new certificate n times, opening a circuit
	// to b with each.
	renewAndOpen := func(n int) {
		t.Helper()
		for range n {
			id, err := c.ca.Issue("a", 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.SetIdentity(id); err != nil {
				t.Fatal(err)
			}
			if err := roundTrip(t, a, "b", EchoService, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := roundTrip(t, a, "b", EchoService, []byte("x")); err != nil {
		t.Fatal(err)
	}
	check("after a's first open", 0)
	const renewals = 6 // a's identities: 1 + 6, so 3 beyond the 4
	renewAndOpen(renewals)
	before := float64(1 + renewals - perName)
	check("after a's renewals", before)

	id, err := c.ca.Issue("b", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetIdentity(id); err != nil {
		t.Fatal(err)
	}
	check("after b's renewal", before)
	// b's new keys cache a's identities afresh: the fifth evicts.
	renewAndOpen(perName + 1)
	check("after a's renewals on b's new keys", before+1)
	t.Logf("b counts %v evictions of a's own entries from each cache, %v before its renewal", evicted("identities"), before)
}
