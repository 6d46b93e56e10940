package node

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// TestAttackInfoLinkPeerNames: the peers of the links in a node's info
// answer are its word, and Info returns them to the application (which
// may print them or draw them) as it returns the answer's other text.
// m, a node with a valid certificate, answers _info with a link to a
// "peer" whose name holds terminal escapes, or 255 bytes. Before, a's
// Info(ctx, "m") returned them as sent in Links[0].Peer (the other text
// made printable, this not at all); now the answer is bad (ErrBadInfo
// wrapping identity.ErrInvalidName), its error printable, and an answer
// whose link peers are node names is still read.
func TestAttackInfoLinkPeerNames(t *testing.T) {
	a, m, info := infoLiar(t)
	for _, peer := range []string{escClear + "a" + escTitle, strings.Repeat("p", 255)} {
		lie := info
		lie.Links = append([]InfoLink{{Peer: peer, Role: "router", RTT: time.Millisecond, Cost: 10}}, info.Links...)
		if _, err := DecodeInfo(encodeInfo(lie)); !errors.Is(err, ErrBadInfo) || !errors.Is(err, identity.ErrInvalidName) {
			t.Errorf("DecodeInfo of a link to %.20q: %v, want ErrBadInfo wrapping ErrInvalidName", peer, err)
		}
	}

	lie := info
	lie.Links = append([]InfoLink{{Peer: escClear + "a" + escTitle, Role: "router", RTT: time.Millisecond, Cost: 10}}, info.Links...)
	wantInfoRefused(t, a, m, lie, identity.ErrInvalidName)

	if _, err := DecodeInfo(encodeInfo(info)); err != nil {
		t.Fatalf("DecodeInfo of an honest answer: %v", err)
	}
}
