package node

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// TestSetIdentityRefusesUnusableIdentity: an embedding service that hands
// SetIdentity a nil identity, a renewed certificate with the wrong key, or
// a certificate its CA did not sign, gets an error and the node keeps the
// identity it has: its live link stays and it still links to a new peer.
// Before, nil panicked (nil pointer dereference) and the two others were
// taken (nil error): the node then presented a certificate that did not
// match its key, or that its peers' CA did not sign, and every new link
// failed while the live ones stayed up.
func TestSetIdentityRefusesUnusableIdentity(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	a := c.nodes["a"]
	was := a.identity()

	renewed, err := c.ca.Issue("a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := c.ca.Issue("a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := *renewed
	wrongKey.Key = other.Key
	rogueCA, err := identity.NewCA("test", 0)
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := rogueCA.Issue("a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	unsigned := *rogue
	unsigned.CA = c.ca.Cert // the mesh's CA, which did not sign it

	for _, tc := range []struct {
		name string
		id   *identity.Identity
		want error
	}{
		{"nil", nil, ErrInvalidConfig},
		{"key of another certificate", &wrongKey, identity.ErrKeyMismatch},
		{"certificate of another CA", &unsigned, identity.ErrUntrusted},
	} {
		err := func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			return a.SetIdentity(tc.id)
		}()
		if !errors.Is(err, tc.want) {
			t.Errorf("SetIdentity(%s): %v, want an error wrapping %v", tc.name, err, tc.want)
		}
		if a.identity() != was {
			t.Errorf("SetIdentity(%s) replaced the node's identity", tc.name)
		}
	}
	if a.link("b") == nil {
		t.Fatal("a lost its link to b")
	}
	c.build("a-c") // fails the test if the handshake does
	c.waitRoute("a", "c", 1)
}
