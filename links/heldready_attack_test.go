package links

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// TestAttackHolderWithholdsReadyFillsHandshakeSlots: a holder of a valid
// certificate completes TLS and sends its hello from a few IPv4
// addresses, reads the node's hello and never sends ready, dialling
// again as soon as the node drops the connection. Its hello proved a
// certificate, so none of these handshakes counts as failed, and each
// holds its handshake slot until the handshake timeout. Before, ten
// addresses held the node's 128 slots and an honest node was refused
// (CONNECTION_REFUSED, "too many link handshakes in progress") in most
// of its setups; now a name holds at most maxAcceptsPerName slots past
// TLS and every setup links.
func TestAttackHolderWithholdsReadyFillsHandshakeSlots(t *testing.T) {
	ca := testCA(t, "m")
	v := newNode(t, issue(t, ca, "v"), nil)
	h := nodeAt(t, issue(t, ca, "h"), "127.0.0.3")

	m := issue(t, ca, "m")
	const prefixes, perPrefix = 10, 20
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var held, refused, attempts atomic.Int64
	var inst atomic.Uint64
	for p := range prefixes {
		tr, done := transportAt(t, fmt.Sprintf("127.0.4.%d", p+1))
		t.Cleanup(done)
		for range perPrefix {
			wg.Go(func() {
				for ctx.Err() == nil {
					i := inst.Add(1)
					hp := handMadeDial(ctx, tr, m, v.LocalAddr(), memberHello(m, i, i))
					attempts.Add(1)
					if hp == nil {
						refused.Add(1)
						select {
						case <-ctx.Done():
						case <-time.After(100 * time.Millisecond):
						}
						continue
					}
					held.Add(1)
					select { // no ready: the node ends it at its timeout
					case <-hp.conn.Context().Done():
					case <-ctx.Done():
					}
					held.Add(-1)
					_ = hp.conn.CloseWithError(0, "")
				}
			})
		}
	}
	t.Cleanup(func() { cancel(); wg.Wait() })

	// Each address dials again at once (or 100 ms after a refusal): by
	// then the holder has tried to take every slot it could.
	waitFor(t, "the holder's handshakes to get under way", patience, func() bool {
		return attempts.Load() >= 2*prefixes*perPrefix
	})
	var most atomic.Int64
	stop := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if n := int64(v.HandshakeStats().InProgress); n > most.Load() {
				most.Store(n)
			}
		}
	})
	// A try every 200 ms for 2 s: an honest node's redials.
	const rounds, tries = 6, 10
	start := time.Now()
	ok := linkSetups(t, h, v, rounds, tries)
	close(stop)
	watch.Wait()
	st := v.HandshakeStats()
	t.Logf("%v: holder held %d handshakes at once (node in progress at most %d), %d refused; honest setups linked %d of %d; node stats %+v",
		time.Since(start).Round(time.Millisecond), held.Load(), most.Load(), refused.Load(), ok, rounds, st)
	if ok < rounds {
		t.Fatalf("one certificate holder withholding ready from %d addresses kept the node's handshake slots (%d in progress): an honest node linked %d of %d setups within %d tries",
			prefixes, most.Load(), ok, rounds, tries)
	}
}

// nodeAt is newNode on a socket at ip: another host than the attackers'
// addresses (127.0.0.0/8 is all loopback on Linux).
func nodeAt(t *testing.T, id *identity.Identity, ip string) *node {
	t.Helper()
	udp, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = udp.Close() })
	return newNode(t, id, func(c *QUICConfig) { c.PacketConn = udp })
}
