package links

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// TestPeerHelloNameHasNoControls: a node dials an address where a
// stranger answers (any certificate passes TLS; the link handshake
// checks it), whose hello names a node with terminal control sequences.
// The dial's error, which Node.Link returns and an embedder or the CLI
// prints, says why the certificate was refused and names the claimed
// node with every control character replaced. When the stranger dials,
// the acceptor refuses its certificate before its hello and names its
// address: no control character either.
func TestPeerHelloNameHasNoControls(t *testing.T) {
	ca := testCA(t, "m")
	// Without a certificate of the mesh, and checking none itself.
	stranger, err := identity.Insecure("s", "m")
	if err != nil {
		t.Fatal(err)
	}
	name := forgedReason[:strings.Index(forgedReason, "\n")] // a hello name is at most 255 bytes
	claim := func(c *QUICConfig) { c.testNode = name }
	check := func(who string, err error, named string) {
		t.Helper()
		msg := err.Error()
		t.Logf("%s: %q", who, msg)
		if !errors.Is(err, ErrRefused) || !strings.Contains(msg, named) {
			t.Errorf("%s's error %q: want ErrRefused naming %q", who, msg, named)
		}
		if i := controlAt(msg); i >= 0 {
			t.Errorf("%s's error carries control character %q at byte %d of %q", who, msg[i], i, msg)
		}
	}

	a := newNode(t, issue(t, ca, "a"), nil)
	s := newNode(t, stranger, claim)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	_, err = a.Dial(ctx, s.LocalAddr().String())
	check("the dialler", err, "all good")

	_, _ = s.Dial(ctx, a.LocalAddr().String())
	select {
	case err := <-a.refused:
		check("the acceptor", err, "certificate of "+s.LocalAddr().String())
	case <-time.After(patience):
		t.Fatal("the acceptor reported no refusal")
	}
}
