package node

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestAttackTrickleDownloadsWithMadeUpPathsPinRelayLinkWindow is
// TestAttackTrickleDownloadsPinRelayLinkWindow with m, a member that
// routes, writing its own opens by hand: each of its 100 NoResume
// circuits through r to d's bulk service is its own (Source m, sealed,
// the handshake proves m and d accepts it), but claims to come through
// a made-up relay before m (hop 2, path x<i>, m). Before, r keyed each
// circuit's streams by the source as claimed along its path only, so
// each circuit was a source of its own on r's link from d: none held
// more than half the link window, and the cap on what one source's slow
// readers hold reset none. Read at 24 KiB/s, none stalled either.
// Together they held r's whole window on its link from d: 2 of 2 honest
// 1 MiB echoes through r to d timed out at 10 s (34 to 46 ms before the
// attack), and 0 or 2 of m's circuits were reset (two runs). Now r
// counts them under m too, the neighbour they came from, which the link
// proves: it resets 68 or 69 of the 100, and every echo goes through
// (155 to 453 in 15 s, median 27 to 38 ms, slowest 0.7 to 2.2 s, in six
// runs).
func TestAttackTrickleDownloadsWithMadeUpPathsPinRelayLinkWindow(t *testing.T) {
	res := trickleDownloads(t, func(m *Node, i int) (io.ReadCloser, error) {
		// A first circuit, so that m holds d's key and its opens by hand
		// are one-message handshakes.
		if i == 0 {
			if err := roundTrip(t, m, "d", EchoService, []byte("warm")); err != nil {
				t.Fatal(err)
			}
		}
		return openMadeUpPath(ctxT(t, 10*time.Second), m, m.link("r"), "d", "bulk", fmt.Sprintf("x%d", i))
	})
	if res.fails > 0 {
		t.Errorf("%d of %d honest %d-byte echoes through r failed (%v each) while one member's %d trickled downloads, each claiming a made-up relay before it, held r's link from d (%d of them reset)",
			res.fails, res.rounds, res.size, res.limit, res.opened, res.ended)
	}
}

// openMadeUpPath opens a sealed NoResume circuit from m over its link l
// to service of dest, as m (its own handshake), with a header that says
// m relays it for itself from relay, a made-up node: hop 2, path relay,
// m. The circuit is reset when the test ends.
func openMadeUpPath(ctx context.Context, m *Node, l links.Link, dest, service, relay string) (*circuit.Conn, error) {
	s, err := l.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	o := &circuit.Open{Dest: dest, Source: m.Name(), Service: service, Hop: 2, HopLimit: 15, Path: []string{relay, m.Name()}}
	sec := circuit.Security{Keys: m.seal.Load()}
	if r, ok := m.keyBook.LookupKey(dest); ok {
		sec.Peer = r
	}
	conn, err := circuit.DialSecure(ctx, s, o, circuit.Addr{Node: m.Name(), Service: service}, sec)
	if err != nil {
		s.Reset(circuit.CloseCancelled)
		return nil, err
	}
	return conn, nil
}
