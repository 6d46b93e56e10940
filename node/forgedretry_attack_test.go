package node

import (
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// forgingRelay stands for a relay's stream to the destination on one
// circuit: it lets the destination's answer arrive, drops it, and hands
// the source a result header of its own (a Retry) instead. It never
// resets the destination's stream, so the circuit the destination
// accepted stays open; its reads end when the source's side ends.
type forgingRelay struct {
	links.Stream
	fake      []byte
	once      sync.Once
	stop      chan struct{}
	stopOnce  sync.Once
	forwarded atomic.Bool // the destination answered, and the forgery went out
}

func newForgingRelay(s links.Stream, fake []byte) *forgingRelay {
	return &forgingRelay{Stream: s, fake: fake, stop: make(chan struct{})}
}

func (f *forgingRelay) Read(p []byte) (int, error) {
	n := 0
	f.once.Do(func() {
		buf := make([]byte, 4096)
		if _, err := f.Stream.Read(buf); err != nil { // the answer: dropped
			return
		}
		n = copy(p, f.fake)
		f.forwarded.Store(true)
	})
	if n > 0 {
		return n, nil
	}
	<-f.stop
	return 0, io.EOF
}

func (f *forgingRelay) end()              { f.stopOnce.Do(func() { close(f.stop) }) }
func (f *forgingRelay) Reset(uint64)      { f.end() }
func (f *forgingRelay) CloseRead(uint64)  { f.end() }
func (f *forgingRelay) CloseWrite() error { return nil }
func (f *forgingRelay) Close() error      { f.end(); return nil }

// forgeRetry makes m answer the first circuit it relays once armed with a
// forged Retry "from" dest; arm returns what that circuit's relay will be.
func forgeRetry(t *testing.T, c *cluster, m, dest string) (arm func() *atomic.Pointer[forgingRelay]) {
	return forgeResult(t, c, m, &circuit.Result{Code: circuit.Retry, Node: dest})
}

// forgeResult is forgeRetry with the result header res.
func forgeResult(t *testing.T, c *cluster, m string, res *circuit.Result) (arm func() *atomic.Pointer[forgingRelay]) {
	t.Helper()
	fake, err := res.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	var armed atomic.Bool
	var forger atomic.Pointer[forgingRelay]
	prev := c.tweak
	c.tweak = func(cfg *Config) {
		if prev != nil {
			prev(cfg)
		}
		if cfg.Name != m {
			return
		}
		if cfg.hooks == nil {
			cfg.hooks = &hooks{}
		}
		cfg.hooks.relay = func(in, out links.Stream) (links.Stream, links.Stream) {
			if !armed.CompareAndSwap(true, false) {
				return in, out
			}
			f := newForgingRelay(out, fake)
			forger.Store(f)
			return in, f
		}
	}
	t.Cleanup(func() {
		if f := forger.Load(); f != nil {
			f.end()
		}
	})
	return func() *atomic.Pointer[forgingRelay] {
		armed.Store(true)
		return &forger
	}
}

// A relay that answers an early circuit's first flight, which the
// destination took with its early data, with a forged Retry does not make
// the source open again and the destination's service take the same bytes
// twice: the destination states, in its authenticated reply to the open
// made again, that it took the flight, and the source fails with
// ErrForgedRetry. A full handshake comes first, so that the early flight
// is a one-message one.
func testForgedRetryEarly(t *testing.T, noResume bool) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "b" {
			// Past its window of its start soon: early data is taken
			// with the first flight, not dropped and sent again.
			cfg.hooks = &hooks{strikeWindow: time.Second}
		}
	}
	arm := forgeRetry(t, c, "m", "b")
	c.build("a-m", "m-b")
	c.waitRoute("a", "b", 2)
	a, b := c.nodes["a"], c.nodes["b"]
	got := serveBank(t, b)
	if err := roundTrip(t, a, "b", EchoService, []byte("x")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	forger := arm()
	_, err := transfer(t, a, noResume)
	if f := forger.Load(); f == nil || !f.forwarded.Load() {
		t.Fatal("the relay forged no retry")
	}
	if !errors.Is(err, circuit.ErrForgedRetry) || !errors.Is(err, circuit.ErrIntegrity) {
		t.Errorf("a's read: %v, want ErrForgedRetry (and ErrIntegrity)", err)
	}
	if seen := received(got, 2*time.Second); len(seen) != 1 {
		t.Errorf("b's service received %q: one early write of a delivered %d times", seen, len(seen))
	}
}

// serveBank serves "bank" on b: each circuit's first read goes to the
// channel returned, then "ok" is answered.
func serveBank(t *testing.T, b *Node) <-chan string {
	got := make(chan string, 8)
	serve(t, b, "bank", func(conn io.ReadWriteCloser) {
		buf := make([]byte, 256)
		n, _ := conn.Read(buf)
		got <- string(buf[:n])
		conn.Write([]byte("ok"))
		conn.Close()
	})
	return got
}

// received is what serveBank's channel got within d.
func received(got <-chan string, d time.Duration) []string {
	var seen []string
	deadline := time.After(d)
	for {
		select {
		case s := <-got:
			seen = append(seen, s)
		case <-deadline:
			return seen
		}
	}
}

// transfer writes a transfer order on an early circuit from a to b's bank
// (as Forward does) and returns what comes back.
func transfer(t *testing.T, a *Node, noResume bool) ([]byte, error) {
	conn, err := a.DialWith(ctxT(t, 10*time.Second), "b", "bank", DialOptions{Early: true, NoResume: noResume})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("TRANSFER 100 to m")); err != nil {
		t.Fatal(err)
	}
	return io.ReadAll(conn)
}

func TestAttackForgedRetryDuplicatesEarlyData(t *testing.T) {
	t.Parallel()
	testForgedRetryEarly(t, true)
}

func TestAttackForgedRetryDuplicatesEarlyDataResumable(t *testing.T) {
	t.Parallel()
	testForgedRetryEarly(t, false)
}

// An honest Retry still opens again: b renewed its keys, so a's
// one-message flight does not decrypt there and b refuses it itself; the
// open made again names that flight, which b never took, and goes ahead,
// the early bytes delivered once.
func TestHonestRetryAfterRenewedKeyDeliversOnce(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-m", "m-b")
	c.waitRoute("a", "b", 2)
	a, b := c.nodes["a"], c.nodes["b"]
	got := serveBank(t, b)
	if err := roundTrip(t, a, "b", EchoService, []byte("x")); err != nil {
		t.Fatal(err) // a learns b's key
	}
	id, err := c.ca.Issue("b", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetIdentity(id); err != nil {
		t.Fatal(err)
	}
	if reply, err := transfer(t, a, true); err != nil || string(reply) != "ok" {
		t.Fatalf("a's read: %q, %v; want the answer", reply, err)
	}
	select {
	case s := <-got:
		if s != "TRANSFER 100 to m" {
			t.Fatalf("b's service received %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b's service received nothing")
	}
	select {
	case s := <-got:
		t.Errorf("b's service received %q a second time", s)
	case <-time.After(time.Second):
	}
}

// A relay's result header refusing a sealed circuit in the destination's
// name, with a reason of its own, does not pass for the destination's
// sealed refusal (Conn.Deny): the error says it is not authenticated.
func TestAttackForgedPolicyRefusalLooksAuthentic(t *testing.T) {
	c := newCluster(t, true)
	arm := forgeResult(t, c, "m", &circuit.Result{Code: circuit.Policy, Node: "b",
		Reason: "denied by rule 'deny dial from=a service=bank' (your certificate is revoked)"})
	c.build("a-m", "m-b")
	c.waitRoute("a", "b", 2)
	a, b := c.nodes["a"], c.nodes["b"]
	serve(t, b, "bank", echoHandler)
	if err := roundTrip(t, a, "b", EchoService, []byte("x")); err != nil {
		t.Fatal(err)
	}
	forger := arm()
	_, err := a.Dial(ctxT(t, 10*time.Second), "b", "bank")
	if f := forger.Load(); f == nil || !f.forwarded.Load() {
		t.Fatal("the relay forged no refusal")
	}
	var re *circuit.RefusedError
	if !errors.As(err, &re) || re.Code != circuit.Policy {
		t.Fatalf("a's dial: %v, want the forged refusal", err)
	}
	if re.Authenticated || !strings.Contains(err.Error(), "(unauthenticated)") {
		t.Errorf("a forged result header passes for a sealed refusal: %v (Authenticated %v)", err, re.Authenticated)
	}
}
