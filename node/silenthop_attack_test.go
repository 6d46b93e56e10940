package node

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// dialEchoVia opens a circuit from a to d's echo service with the node's
// own DialTimeout (10 s: the context has no deadline), and checks that
// it runs through via and echoes.
func dialEchoVia(t *testing.T, a *Node, via string, what string) {
	t.Helper()
	start := time.Now()
	conn, err := a.DialWith(context.Background(), "d", EchoService, DialOptions{RecordPath: true})
	if err != nil {
		t.Fatalf("%s: failed after %v: %v", what, time.Since(start).Round(time.Millisecond), err)
	}
	defer conn.Close()
	if got, want := fmt.Sprint(conn.Path()), fmt.Sprintf("[a %s d]", via); got != want {
		t.Fatalf("%s: path %s, want %s", what, got, want)
	}
	echoOnce(t, conn, "ping")
	t.Logf("%s: opened through %s and echoed in %v", what, via, time.Since(start).Round(time.Millisecond))
}

// On a diamond a–{b,c}–d where routing prefers b, b stops forwarding
// every circuit it relays (it drops the bytes both ways) while its links,
// routes and probes stay healthy. a's resumable transfer finds that
// nothing arrives and resumes through c. The circuits a opens to d after
// that must go through c too: before, every new Dial went through b
// again, for as long as b liked, and failed after 5 s ("malformed header:
// stream ended before the result header": b dropped d's refusal and
// passed on its end of the stream).
func TestAttackSilentRelayKeepsNewCircuits(t *testing.T) {
	t.Parallel()
	const size = 4 << 20
	var stuck atomic.Bool
	c := diamondRelayedByB(t, func(in, out links.Stream) (links.Stream, links.Stream) {
		return stuckStream{in, &stuck}, stuckStream{out, &stuck}
	})
	a := c.nodes["a"]
	conn, w, received, srvErr := sendAlongABD(t, c, size/2, size/4)
	defer conn.Close()
	stuck.Store(true)
	stopped := time.Now()
	waitFor(t, "the circuit to resume through c", 2*patience, func() bool {
		return fmt.Sprint(conn.Path()) == "[a c d]"
	})
	t.Logf("the transfer left b %v after it stopped forwarding", time.Since(stopped).Round(time.Millisecond))
	if err := w.write(size / 2); err != nil {
		t.Fatalf("write after b stopped forwarding: %v", err)
	}
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	checkDigest(t, conn, w.sum(), received, srvErr)
	if p, _ := a.Peer("d"); p.NextHop != "b" {
		t.Fatalf("routing's next hop from a to d is %q: b no longer preferred, the test proves nothing", p.NextHop)
	}
	for i := range 3 {
		dialEchoVia(t, a, "c", fmt.Sprintf("new circuit %d after b stopped forwarding", i+1))
	}
}

// On the same diamond b carries nothing from the start, its links up: it
// forwards every open to d and passes nothing back (no answer, no
// handshake reply, no reset: a relay that holds the opens it accepts),
// or it drops every byte both ways after the open header and passes on
// the ends of the streams (d's refusal at its header timeout arrives as
// a stream ended before the result header). With the default limits
// (HeaderTimeout 5 s, DialTimeout 10 s) a's first Dial to d waits 5 s on
// b, then goes through c; the next go through c at once. Before, the
// first Dial failed, at its deadline or after d's header timeout, and
// before suspects every Dial went through b again and failed the same
// way, for as long as b liked (TestEarlyResumableOpenNotHeldBySilentRelay
// covers an early open through the first relay;
// TestAttackSwallowingRelayFirstDialMoves the first dial with a shorter
// header timeout).
func TestAttackRelayHoldingOpensKeepsNewDials(t *testing.T) {
	t.Parallel()
	for _, tc := range swallowingRelays() {
		t.Run(tc.name, func(t *testing.T) {
			firstDialsThroughC(t, diamondRelayedByB(t, tc.relay), "swallows")
		})
	}
}

// swallowingRelays are the ways b passes nothing of a circuit back to its
// source, its links up (TestAttackRelayHoldingOpensKeepsNewDials).
func swallowingRelays() []struct {
	name  string
	relay func(in, out links.Stream) (links.Stream, links.Stream)
} {
	stuck := new(atomic.Bool)
	stuck.Store(true)
	return []struct {
		name  string
		relay func(in, out links.Stream) (links.Stream, links.Stream)
	}{
		{"holds the answers", func(in, out links.Stream) (links.Stream, links.Stream) {
			return silentStream{in}, out
		}},
		{"drops the bytes", func(in, out links.Stream) (links.Stream, links.Stream) {
			return stuckStream{in, stuck}, stuckStream{out, stuck}
		}},
	}
}

// firstDialsThroughC checks, on c's diamond whose b swallows what it
// relays while routing still prefers it, that a's first Dial to d (with
// a's DialTimeout) opens through c and leaves b a suspect for d, and
// that the next ones open through c too. why says what b does.
func firstDialsThroughC(t *testing.T, c *cluster, why string) {
	t.Helper()
	a := c.nodes["a"]
	if p, _ := a.Peer("d"); p.NextHop != "b" {
		t.Fatalf("routing's next hop from a to d is %q: b not preferred, the test proves nothing", p.NextHop)
	}
	dialEchoVia(t, a, "c", "the first dial while b "+why)
	if avoid := a.suspects.order("d", time.Now(), nil); fmt.Sprint(avoid) != "[b]" {
		t.Fatalf("a's suspects for d after the first dial: %v, want [b]", avoid)
	}
	if p, _ := a.Peer("d"); p.NextHop != "b" {
		t.Fatalf("routing's next hop from a to d is %q: b no longer preferred, the test proves nothing", p.NextHop)
	}
	for i := range 3 {
		dialEchoVia(t, a, "c", fmt.Sprintf("dial %d after the first while b %s", i+2, why))
	}
}
