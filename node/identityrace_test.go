package node

import (
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// TestConcurrentSetIdentityLeavesOneIdentity: two renewals applied at once
// (a SIGHUP and `circuitmesh reload` together, or two goroutines of an
// embedding service) must leave the node with one of them in every part:
// the certificate it holds, the key record it hands to end-to-end peers
// (signed with that certificate's key) and the certificate its route
// attestations use. The first change is held between storing its
// certificate and its keys while the second runs. Before, nothing
// serialized them: the second ran through, and the first then stored its
// keys and attestations beside the second's certificate.
func TestConcurrentSetIdentityLeavesOneIdentity(t *testing.T) {
	c := newCluster(t, true)
	x, err := c.ca.Issue("a", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	y, err := c.ca.Issue("a", 96*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	paused, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c.tweak = func(cfg *Config) {
		cfg.hooks = &hooks{midIdentity: func(id *identity.Identity) {
			if id == x {
				once.Do(func() { close(paused); <-resume })
			}
		}}
	}
	a := c.node("a")

	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.SetIdentity(x); err != nil {
			t.Errorf("set x: %v", err)
		}
	})
	<-paused
	second := make(chan struct{})
	go func() {
		defer close(second)
		if err := a.SetIdentity(y); err != nil {
			t.Errorf("set y: %v", err)
		}
	}()
	// Let the second change run as far as it can while the first is held
	// (through, if nothing holds it back).
	select {
	case <-second:
	case <-time.After(2 * time.Second):
	}
	close(resume)
	wg.Wait()
	<-second

	id := a.identity()
	rec := a.seal.Load().Record()
	attest := a.router.cert.id.Load()
	if !rec.Expiry.Equal(id.Cert.NotAfter.Truncate(time.Second)) || attest != id {
		t.Fatalf("a holds the certificate expiring %v, hands out a key record expiring %v and attests routes with the certificate expiring %v",
			id.Cert.NotAfter.Format(time.RFC3339), rec.Expiry.Format(time.RFC3339), attest.Cert.NotAfter.Format(time.RFC3339))
	}
	if id != y {
		t.Fatalf("a ended with the certificate expiring %v, want the one set last (%v)", id.Cert.NotAfter.Format(time.RFC3339), y.Cert.NotAfter.Format(time.RFC3339))
	}
}
