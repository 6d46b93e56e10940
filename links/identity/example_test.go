package identity_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// A mesh CA issues node certificates; a node accepts a peer whose
// certificate chains to its CA and refuses one from another mesh.
func ExampleCA_Issue() {
	ca, err := identity.NewCA("prod", 0)
	if err != nil {
		panic(err)
	}
	alpha, _ := ca.Issue("alpha", 0)
	bravo, _ := ca.Issue("bravo", 0)

	peer, err := alpha.VerifyPeer([][]byte{bravo.Cert.Raw}, time.Now())
	fmt.Println(peer.Node, peer.Mesh, err)

	other, _ := identity.NewCA("staging", 0)
	mallory, _ := other.Issue("bravo", 0)
	_, err = alpha.VerifyPeer([][]byte{mallory.Cert.Raw}, time.Now())
	fmt.Println(err != nil)

	fmt.Println(errors.Is(identity.ValidateName("Bad Name"), identity.ErrInvalidName))
	// Output:
	// bravo prod <nil>
	// true
	// true
}
