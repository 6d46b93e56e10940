package links

import (
	"fmt"
	"testing"
	"time"
)

// TestAttackStrangersStallFromTenAddresses: a stranger (a certificate of
// another CA) starts handshakes from 10 IPv4 addresses, 20 at a time
// each, and stalls each before sending its certificate, past the
// handshake timeout, dialling again as soon as the node drops one. Each
// address keeps its share of 16 slots (its failures lower its burst, not
// its share, and 8 a second of the node's rate refill it within the 5 s
// a stalled handshake holds a slot), so together they hold all 128 and
// the node refused every other first packet `full`, before the reserve
// that lets members in during a flood was looked at: 128 slots in
// progress, and an honest node at another address, a setup every 300 ms
// with up to 3 tries, linked 17 and 14 of 20. Now the last 32 slots are
// the reserve's and a failing prefix holds at most 8: it links every
// setup, as it does when the flood comes from one address
// (TestHandshakeFloodWithoutCertificate).
func TestAttackStrangersStallFromTenAddresses(t *testing.T) {
	ca := testCA(t, "m")
	v := newNode(t, issue(t, ca, "v"), nil)
	h := nodeAt(t, issue(t, ca, "h"), "127.0.0.3")
	x := issue(t, testCA(t, "m"), "x")
	const prefixes, perPrefix = 10, 20
	var floods []*handshakeFlood
	for p := range prefixes {
		floods = append(floods, startHandshakeFlood(t, v.LocalAddr(), fmt.Sprintf("127.0.5.%d", p+1), perPrefix, x))
	}
	waitFor(t, "the flood's handshakes to get under way", patience, func() bool {
		var n int64
		for _, f := range floods {
			n += f.refused.Load() + f.complete.Load()
		}
		return n >= 2*prefixes*perPrefix
	})
	most := 0
	for range 50 {
		most = max(most, v.HandshakeStats().InProgress)
		time.Sleep(20 * time.Millisecond)
	}
	// One setup every 300 ms over more than one cycle of the flood's
	// handshakes (a timeout and a redial), each allowed an honest node's
	// redials (3 tries, 200 ms apart): a dial in the moment the flood's
	// slots end together links either way.
	const rounds, tries = 20, 3
	ok := 0
	for range rounds {
		ok += linkSetups(t, h, v, 1, tries)
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("slots in progress at most %d; honest setups linked %d of %d; node stats %+v", most, ok, rounds, v.HandshakeStats())
	if ok < rounds {
		t.Fatalf("strangers stalling handshakes from %d addresses held %d of the node's %d slots: an honest node linked %d of %d setups within %d tries",
			prefixes, most, maxPendingHandshakes, ok, rounds, tries)
	}
}
