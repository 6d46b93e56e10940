package node

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAttackReplayedOneMessageThroughRelaySpendsRetries: m, a member
// linked to the relay r, replays one one-message (IK) first message of
// its own to d through r as fast as it can. d refuses every copy as a
// replay (retry, before any Diffie-Hellman), and charges each to its
// budget of failed one-message handshakes for the link it arrived on,
// r's, which every source behind r shares. Then d renews its certificate
// (a new key), as every node does in time: h, an honest neighbour of r
// holding d's old key, dials d. Its one-message first message no longer
// decrypts at d, which should cost h one retry (the full handshake).
// Before, m kept d's budget for r's link spent, and h's dial was refused
// `overloaded`. Now r forwards from one link to its neighbour d only as
// many one-message first messages as its budget
// (Limits.RelayFullHandshakesPerLink a second) holds, giving a token back
// for each that d answers neither retry nor overloaded, so m spends half
// of d's budget for r here (a quarter by default) and h's dials succeed.
// The budget is lowered to 2 a second so that the test does not depend
// on the machine's speed; three renewals, 1.2 s apart, each followed by
// h's dial.
func TestAttackReplayedOneMessageThroughRelaySpendsRetries(t *testing.T) {
	t.Run(firstReplayedOneMessage.String(), func(t *testing.T) { failedOneMessageThroughRelay(t, firstReplayedOneMessage, "r", "m-r", "h-r", "r-d") })
	t.Run(firstBogusOneMessage.String(), func(t *testing.T) {
		if testing.Short() {
			t.Skip("the same defence against first messages that fail after a Diffie-Hellman; 5 s")
		}
		failedOneMessageThroughRelay(t, firstBogusOneMessage, "r", "m-r", "h-r", "r-d")
	})
}

// failedOneMessageThroughRelay is the attack above with m's first
// messages of the given kind, sent through via, in the mesh of edges (m
// and h linked to via, d at the end of a chain from it).
func failedOneMessageThroughRelay(t *testing.T, kind firstKind, via string, edges ...string) {
	failedOneMessageThroughRelayWith(t, kind, func(cfg *Config) {
		// d: 2 failed one-message handshakes a second per link (burst
		// 2); the last relay: 1 a second from one link to d (burst 16).
		cfg.Limits.FullHandshakesPerLink = 2
		cfg.Limits.MaxCircuitsPerSource = 16
	}, via, edges...)
}

// failedOneMessageThroughRelayWith is failedOneMessageThroughRelay with
// the limits tweak sets.
func failedOneMessageThroughRelayWith(t *testing.T, kind firstKind, tweak func(*Config), via string, edges ...string) {
	c := newCluster(t, true)
	c.tweak = tweak
	c.build(edges...)
	hops := len(edges) - 1 // every edge but h's is on m's path
	c.waitRoute("m", "d", hops)
	c.waitRoute("h", "d", hops)
	m, h, d := c.nodes["m"], c.nodes["h"], c.nodes["d"]
	// h learns d's key (a full handshake): its next dial to d is a
	// one-message one.
	if err := roundTrip(t, h, "d", EchoService, []byte("learn")); err != nil {
		t.Fatal(err)
	}
	l := m.link(via)
	if l == nil {
		t.Fatalf("no link m-%s", via)
	}
	rec := d.seal.Load().Record()
	sent, overloaded, stop := floodCostlyFirst(t, m, "d", &rec, kind, l)
	defer stop()
	for round := range 3 {
		// Past m's first burst: d's budget for r has had time to
		// refill, and r's budget of h's full handshakes to d (1 a second
		// here) since the last round.
		time.Sleep(1200 * time.Millisecond)
		id, err := c.ca.Issue("d", 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.SetIdentity(id); err != nil {
			t.Fatal(err)
		}
		cn, err := h.Dial(ctxT(t, 10*time.Second), "d", EchoService)
		t.Logf("round %d: m sent %d %s first messages through %s so far (%d refused overloaded); h's dial to d after d renewed its key: %v",
			round, sent.Load(), kind, via, overloaded.Load(), err)
		if err != nil {
			t.Fatalf("round %d: h's dial to d with d's old key, while m replays through %s: %v; want one retry and the full handshake", round, via, err)
		}
		err = echoMsg(cn, "after the renewal")
		cn.Close()
		if err != nil {
			t.Fatalf("round %d: h's circuit to d: %v", round, err)
		}
	}
	if overloaded.Load() == 0 {
		t.Errorf("none of m's %d %s first messages was refused overloaded", sent.Load(), kind)
	}
}

// TestRelayedOneMessageOpensGiveTheirTokensBack: the relay's budget of
// one-message first messages that fail at the destination holds a token
// only while the destination's answer is awaited, or once it answered
// retry or overloaded. h, behind r, opens four bursts of 16 one-message
// circuits to d, one right after the other (d forgets its sessions, so
// none resumes): r's budget from h's link to d is 1 a second, burst 32,
// and every open succeeds, the budget holding at most the 16 awaiting
// d's answer at once. (With the tokens kept once taken, the third burst
// was refused.)
func TestRelayedOneMessageOpensGiveTheirTokensBack(t *testing.T) {
	const burst, rounds = 16, 4
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.FullHandshakesPerLink = 2 // r: 1 a second from one link to d
		cfg.Limits.MaxCircuitsPerSource = 2 * burst
		cfg.Limits.OneMessageHandshakesPerSource = 1 << 10 // not what this test bounds
		if cfg.Name == "d" {
			cfg.hooks = &hooks{forgetSessions: true}
		}
	}
	c.build("h-r", "r-d")
	c.waitRoute("h", "d", 2)
	h := c.nodes["h"]
	if err := roundTrip(t, h, "d", EchoService, []byte("learn")); err != nil { // a full handshake: h learns d's key
		t.Fatal(err)
	}
	var failed atomic.Int64
	for round := range rounds {
		var wg sync.WaitGroup
		for i := range burst {
			wg.Go(func() {
				if err := roundTrip(t, h, "d", EchoService, []byte{byte(i)}); err != nil {
					t.Logf("round %d, open %d: %v", round, i, err)
					failed.Add(1)
				}
			})
		}
		wg.Wait()
	}
	if failed.Load() > 0 {
		t.Fatalf("%d of %d bursts of %d one-message opens through r failed", failed.Load(), rounds, burst)
	}
}
