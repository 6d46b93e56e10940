package node

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// TestDrainingGossipPeerKeepsItsCircuits: b, a node that gossips, drains
// (Close with a grace period) while a holds a circuit to it over a link
// that a's discovery dialled. b leaves gossip as it starts draining. a's
// discovery dropped links it had dialled to members no longer alive, so
// it cut the link about a step later, and with it the circuit that b was
// letting finish: the next echo never came back. A peer that said it
// drains closes its links itself once its circuits end or its grace runs
// out; a keeps the link until then.
func TestDrainingGossipPeerKeepsItsCircuits(t *testing.T) {
	c := newCluster(t, true)
	var seed string
	c.tweak = func(cfg *Config) {
		gossipJoining(&seed)(cfg)
		cfg.GracePeriod = time.Minute
	}
	first := c.add("b")
	seed = first.Status().GossipAddr
	second := c.add("a")
	c.tweak = nil
	waitVerified(t, []*Node{first, second})

	// The drainer is the peer of the node that dialled their link.
	var dialler, drainer *Node
	deadline := time.Now().Add(patience)
	for dialler == nil {
		for _, p := range [][2]*Node{{second, first}, {first, second}} {
			for _, l := range p[0].Links() {
				if l.Peer == p[1].Name() && l.Outbound {
					dialler, drainer = p[0], p[1]
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no link between a and b")
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.waitRoute(dialler.Name(), drainer.Name(), 1)

	conn, err := dialler.Dial(ctxT(t, 10*time.Second), drainer.Name(), EchoService)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echo := func(msg string) error {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte(msg)); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil {
			return err
		}
		if !bytes.Equal(got, []byte(msg)) {
			t.Fatalf("echo %q, want %q", got, msg)
		}
		return nil
	}
	if err := echo("before"); err != nil {
		t.Fatal(err)
	}

	closed := make(chan error, 1)
	go func() { closed <- drainer.Close() }()
	// Until the dialler's discovery has seen the drainer leave gossip
	// and taken a few steps since.
	for drainer.Status().State != "draining" {
		time.Sleep(10 * time.Millisecond)
	}
	waitFor(t, "the drainer gone from the dialler's gossip members", patience, func() bool {
		for _, m := range dialler.Members() {
			if m.Name == drainer.Name() {
				return false
			}
		}
		return true
	})
	time.Sleep(4 * 500 * time.Millisecond) // four discovery steps
	if err := echo("during the drain"); err != nil {
		t.Fatalf("circuit to a draining peer cut: %v (links of %s: %+v)", err, dialler.Name(), dialler.Links())
	}
	conn.Close()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("close %s: %v", drainer.Name(), err)
		}
	case <-time.After(patience):
		t.Fatalf("%s still draining %v after its last circuit closed", drainer.Name(), patience)
	}
}
