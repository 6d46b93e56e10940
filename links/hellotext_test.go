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
// member answers whose hello names another node, with terminal control
// sequences. The dial's error, which Node.Link returns and an embedder
// or the CLI prints, says the hello's name is not the certificate's and
// names the claimed node with every control character escaped. (A
// stranger's hello is never read: both ends refuse its certificate
// before it.) When a stranger dials, the acceptor refuses its
// certificate before its hello and names its address: no control
// character either.
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
	m := newNode(t, issue(t, ca, "m"), claim)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	_, err = a.Dial(ctx, m.LocalAddr().String())
	check("the dialler", err, "all good")

	s := newNode(t, stranger, nil)

	_, _ = s.Dial(ctx, a.LocalAddr().String())
	select {
	case err := <-a.refused:
		check("the acceptor", err, "certificate of "+s.LocalAddr().String())
	case <-time.After(patience):
		t.Fatal("the acceptor reported no refusal")
	}
}
