package node

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
)

// resumed reports whether a circuit resumed a session.
func resumed(c io.ReadWriteCloser) bool {
	return c.(interface{ SessionResumed() bool }).SessionResumed()
}

// echoByte sends one byte on a circuit to the echo service and reads it
// back.
func echoByte(t *testing.T, conn io.ReadWriter) {
	t.Helper()
	if _, err := conn.Write([]byte("p")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
}

// A relay that recorded a resumed open's first flight replays it: refused
// (retry, the replay register), and the early data is delivered once.
func TestSealedRelayReplaysResumedFirstFlight(t *testing.T) { replayFirstFlight(t, true) }

// A router with a valid certificate and its own session with b cannot use
// a's: neither its own session while claiming to be a, nor a's ticket id
// (which it saw in the clear on the circuits it relays) with its own real
// key. b refuses both, its service sees nothing, and a's session still
// works.
func TestResumedSessionOfAnotherPairRefused(t *testing.T) {
	c, up, got := spiedLine(t)
	a, m := c.nodes["a"], c.nodes["m"]
	for _, n := range []*Node{a, a, m, m} { // full, then one-message: a session each
		waitRelayIdle(t, c) // the spy follows one circuit at a time
		if err := roundTrip(t, n, "b", EchoService, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	waitRelayIdle(t, c)
	up.mu.Lock()
	up.seen.Reset()
	up.mu.Unlock()
	if err := roundTrip(t, a, "b", EchoService, []byte("y")); err != nil {
		t.Fatal(err)
	}
	flight := up.bytes()
	// The relay reads past the open header: the framed first message,
	// mode 3 then the ticket id.
	theirs := flight
	if len(theirs) < 2+1+16 || theirs[2] != 3 {
		t.Fatalf("a's circuit did not resume a session (first message %x)", theirs[:min(len(theirs), 8)])
	}
	ini, err := m.seal.Load().Initiate(seal.Prologue("b", "a", "svc", uint16(circuit.FlagEarly|circuit.FlagSealed)), "b", nil)
	if err != nil || !ini.Resumed() {
		t.Fatalf("m holds no session with b: %v", err)
	}
	mine, err := ini.First(nil, []byte("transfer 100 to m"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res := sendForged(t, m, "a", mine); res.Code != circuit.Policy {
		t.Fatalf("m's session claiming a: result %v (%s), want policy", res.Code, res.Reason)
	}
	forged := bytes.Clone(mine)
	copy(forged[3:19], theirs[3:19])
	if res := sendForged(t, m, "a", forged); res.Code != circuit.Policy {
		t.Fatalf("a's session id with m's key: result %v (%s), want policy", res.Code, res.Reason)
	}
	select {
	case s := <-got:
		t.Fatalf("b's service received %q from a forged open", s)
	default:
	}
	waitRelayIdle(t, c) // the "y" circuit's splice still holds the spy until it ends
	conn, err := a.DialWith(ctxT(t, 10*time.Second), "b", "svc", DialOptions{Early: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !resumed(conn) {
		t.Fatal("a lost its session")
	}
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "hello" {
		t.Fatalf("b's service got %q", s)
	}
}

// When the destination renews its certificate (new key, no sessions), a
// dial that resumes is refused with retry and falls back to the next
// handshake down, transparently; the session is then renewed.
func TestResumedDialAfterDestinationRenewal(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	a, b := c.nodes["a"], c.nodes["b"]
	dial := func() bool {
		t.Helper()
		conn, err := a.Dial(ctxT(t, 10*time.Second), "b", EchoService)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		echoByte(t, conn)
		return resumed(conn)
	}
	if r1, r2, r3 := dial(), dial(), dial(); r1 || r2 || !r3 {
		t.Fatalf("resumed: %v %v %v, want only the third", r1, r2, r3)
	}
	id, err := c.ca.Issue("b", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetIdentity(id); err != nil {
		t.Fatal(err)
	}
	if dial() {
		t.Fatal("resumed a session of b's old keys")
	}
	if r1, r2 := dial(), dial(); r1 || !r2 {
		t.Fatalf("after renewal resumed: %v %v, want a one-message open then a resumed one", r1, r2)
	}
}

// A node whose route is lost (it may be restarting, which drops the
// sessions it issued) loses its sessions at the source too: the next
// circuit takes a one-message handshake instead of a refused resumption.
func TestSessionForgottenWhenRouteLost(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-b", "b-c")
	c.waitRoute("a", "c", 2)
	a := c.nodes["a"]
	for range 2 {
		if err := roundTrip(t, a, "c", EchoService, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if !a.seal.Load().Resumable("c") {
		t.Fatal("a holds no session with c")
	}
	cutAndLose(t, c, "a", "b", "c")
	if a.seal.Load().Resumable("c") {
		t.Fatal("a kept its session with c after losing the route")
	}
}

// cutAndLose closes the link between via and lost and waits until from
// loses its route to lost (its PeerDown event).
func cutAndLose(t *testing.T, c *cluster, from, via, lost string) {
	t.Helper()
	events, cancel, err := c.nodes[from].Subscribe(64)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	c.nodes[via].link(lost).Close("test cuts " + via + "-" + lost)
	deadline := time.After(10 * time.Second)
	for gone := false; !gone; {
		select {
		case ev := <-events:
			gone = ev.Kind == PeerDown && ev.Peer == lost
		case <-deadline:
			t.Fatalf("%s did not lose its route to %s", from, lost)
		}
	}
}
