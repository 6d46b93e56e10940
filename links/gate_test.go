package links

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

func udp(s string) net.Addr {
	a, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		panic(err)
	}
	return a
}

// TestGateShares checks the accounting of handshake slots: a prefix keeps
// its share, borrows only idle capacity, is rate limited, and IPv6
// addresses of one /64 share one prefix.
func TestGateShares(t *testing.T) {
	g := newGate()
	now := time.Now()
	var held []*slot
	// One address borrows up to handshakeBorrow slots, then is held to
	// its share while others are busy.
	for i := 0; ; i++ {
		s, err := g.enter(udp("10.0.0.1:1000"), now)
		if err != nil {
			if !errors.Is(err, ErrBusy) || i != handshakeBorrow {
				t.Fatalf("attempt %d refused with %v, want ErrBusy at %d", i, err, handshakeBorrow)
			}
			break
		}
		held = append(held, s)
		if i+1 == handshakeShare/2 && !g.verifySource(udp("10.0.0.1:1001")) {
			t.Fatal("a prefix holding half its share is not asked to validate its addresses")
		}
	}
	// One busy prefix, refused beyond its share, is refused at once
	// rather than sent a Retry, and does not make the others validate
	// their address (see verifySource).
	if g.verifySource(udp("10.0.0.1:1001")) {
		t.Fatal("a prefix refused anyway is sent a Retry")
	}
	if g.verifySource(udp("10.0.3.1:1")) {
		t.Fatal("one busy prefix makes peers of another validate their address")
	}
	// Other prefixes still get every remaining slot, each up to its share
	// (the total is above the borrow mark now).
	for i := range maxPendingHandshakes - handshakeBorrow {
		ip := "10.0.1." + string(rune('1'+i/handshakeShare)) + ":1"
		s, err := g.enter(udp(ip), now)
		if err != nil {
			t.Fatalf("slot %d for %s: %v", i, ip, err)
		}
		held = append(held, s)
	}
	if _, err := g.enter(udp("10.0.2.1:1"), now); !errors.Is(err, ErrBusy) {
		t.Fatalf("a slot beyond the node's bound: %v", err)
	}
	if g.verifySource(udp("10.0.3.1:1")) {
		t.Fatal("a full node sends a Retry instead of refusing")
	}
	for _, s := range held {
		s.release()
		s.release() // idempotent
	}
	if st := (&QUICTransport{gate: g}).HandshakeStats(); st.InProgress != 0 || st.Failed != uint64(len(held)) || st.RefusedFull == 0 || st.RefusedShare == 0 {
		t.Fatalf("stats after release: %+v", st)
	}
	if g.verifySource(udp("10.0.3.1:1")) {
		t.Fatal("an idle node asks for address validation")
	}

	// Many busy prefixes: a new peer validates its address.
	g = newGate()
	for i := range handshakeRetryAt {
		if _, err := g.enter(udp(fmt.Sprintf("10.0.4.%d:1", i/(handshakeShare/2))), now); err != nil {
			t.Fatal(err)
		}
	}
	if !g.verifySource(udp("10.0.3.1:1")) {
		t.Fatalf("a node with %d handshakes from %d prefixes does not ask new peers to validate their address",
			handshakeRetryAt, handshakeRetryAt/(handshakeShare/2))
	}

	// Rate: a burst, then handshakeRate per second.
	g = newGate()
	n := 0
	for ; n < 2*handshakeBurst; n++ {
		s, err := g.enter(udp("[2001:db8::1]:1"), now)
		if err != nil {
			break
		}
		s.release()
	}
	if n != handshakeBurst {
		t.Fatalf("%d handshakes admitted at once, want the burst %d", n, handshakeBurst)
	}
	// Another address of the same /64 shares the allowance.
	if _, err := g.enter(udp("[2001:db8::2]:1"), now); !errors.Is(err, ErrBusy) {
		t.Fatalf("same /64 not rate limited: %v", err)
	}
	if _, err := g.enter(udp("[2001:db8:0:1::1]:1"), now); err != nil {
		t.Fatalf("another /64: %v", err)
	}
	if _, err := g.enter(udp("[2001:db8::2]:1"), now.Add(time.Second/handshakeRate)); err != nil {
		t.Fatalf("after 1/rate second: %v", err)
	}
}
