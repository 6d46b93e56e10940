package node

import (
	"github.com/circuitmesh/circuitmesh/links"
	"io"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
)

// TestBogusOneMessageOpensSpendTheBudget: one-message (IK) first messages
// that never decrypt cost d a Diffie-Hellman operation each (es, before
// s fails), and cost m nothing: the same bytes sent again, or random
// ones, will do. They spend the link's budget of failed one-message
// handshakes, 2 a second here; past it, d answers "retry" before any
// cryptography. Before, the budget only changed the answer: d ran the
// cryptography of all 200 (one X25519 operation each, two when the
// payload's tag is what fails) and answered "overloaded".
func TestBogusOneMessageOpensSpendTheBudget(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.Limits.FullHandshakesPerLink = 2; cfg.Limits.FullHandshakes = 2 }
	c.build("m-d")
	m, d := c.nodes["m"], c.nodes["d"]
	codes := map[circuit.Code]int{}
	start := time.Now()
	for i := 0; i < 200; i++ {
		// inside the encrypted static key: fails after the es DH
		s := sendBogusIK(t, m, "d", d.seal.Load().Record(), func(b []byte, hl int) { b[hl+2+1+32+3] ^= 0xff })
		res, err := circuit.ReadResult(s, 0)
		s.Reset(circuit.CloseCancelled)
		if err != nil {
			t.Fatal(err)
		}
		codes[res.Code]++
	}
	el := time.Since(start)
	failed, retried := d.limits.ikFailed.Load(), d.limits.ikRetried.Load()
	t.Logf("200 bogus IK first messages in %v: codes %v; %d ran their cryptography at d, %d answered retry unread", el, codes, failed, retried)
	if limit := uint64(2 + 2*int(el.Seconds()+1)); failed > limit {
		t.Errorf("d ran the cryptography of %d of 200 bogus one-message opens in %v, beyond the link's budget of 2 failures a second (at most %d)", failed, el, limit)
	}
	if codes[circuit.Retry]+codes[circuit.Overloaded] != 200 || retried == 0 {
		t.Errorf("answers %v, %d retry unread; want every one retry or overloaded, most retry unread", codes, retried)
	}
}

// TestBogusOneMessageOpensBehindARelay: x floods d with bogus one-message
// first messages through r, an honest relay, until d's budget of failed
// ones for r's link is spent. a, an honest source behind r that knows d's
// key, still gets its circuits: d answers its one-message open retry
// unread, and a opens again with the full handshake, whose budget x did
// not touch. d never runs more failed one-message handshakes than the
// budget allows.
func TestBogusOneMessageOpensBehindARelay(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.FullHandshakesPerLink = 2       // at d
		cfg.Limits.RelayFullHandshakesPerLink = 32 // at r, its default
	}
	c.build("x-r", "a-r", "r-d")
	x, a, d := c.nodes["x"], c.nodes["a"], c.nodes["d"]
	c.waitConverged()
	echo := func() error {
		conn, err := a.Dial(ctxT(t, 10*time.Second), "d", EchoService)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte("ping")); err != nil {
			return err
		}
		b := make([]byte, 4)
		_, err = io.ReadFull(conn, b)
		return err
	}
	if err := echo(); err != nil { // a learns d's key
		t.Fatal(err)
	}
	flood := func() { // until d answers x's bogus opens retry unread
		for i, n := 0, d.limits.ikRetried.Load()+4; d.limits.ikRetried.Load() < n; i++ {
			if i == 200 {
				t.Fatalf("200 bogus opens through r, %d of them ran their cryptography at d, none answered retry unread", d.limits.ikFailed.Load())
			}
			// the payload's tag: fails after the es and ss DH
			s := sendBogusIK(t, x, "r", d.seal.Load().Record(), func(b []byte, _ int) { b[len(b)-1] ^= 0xff })
			if _, err := circuit.ReadResult(s, 0); err != nil {
				t.Fatalf("bogus open through r: %v", err)
			}
			s.Reset(circuit.CloseCancelled)
		}
	}
	// a's open is answered retry unread unless the link's budget refilled
	// between the flood and it (a slow machine): then again.
	start := time.Now()
	retriedA := 0
	for try := 0; try < 5 && retriedA == 0; try++ {
		flood()
		before := d.limits.ikRetried.Load()
		if err := echo(); err != nil {
			t.Fatalf("a's circuit to d while x floods it through r: %v", err)
		}
		retriedA = int(d.limits.ikRetried.Load() - before)
	}
	failed, retried := d.limits.ikFailed.Load(), d.limits.ikRetried.Load()
	t.Logf("in %v, %d bogus opens ran their cryptography at d, %d opens were answered retry unread, %d of a's", time.Since(start), failed, retried, retriedA)
	if retriedA == 0 {
		t.Fatal("a's one-message opens were never answered retry unread: the test did not reach what it tests")
	}
	if limit := uint64(2 + 2*int(time.Since(start).Seconds()+1)); failed > limit {
		t.Errorf("d ran the cryptography of %d bogus one-message opens, beyond the budget of 2 failures a second (at most %d)", failed, limit)
	}
}

// sendBogusIK opens a stream on from's link to peer and writes an open to
// d's echo service with a one-message first message to d's key record
// rec, broken by spoil (given the message and the header's length).
func sendBogusIK(t *testing.T, from *Node, peer string, rec seal.KeyRecord, spoil func(b []byte, hl int)) links.Stream {
	t.Helper()
	s, err := from.link(peer).OpenStream(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	o := &circuit.Open{Dest: "d", Source: from.cfg.Name, Service: EchoService, HopLimit: 15, Flags: circuit.FlagEarly | circuit.FlagSealed}
	b, _ := o.AppendTo(nil)
	hl := len(b)
	ini, err := from.seal.Load().Initiate(seal.Prologue(o.Dest, o.Source, o.Service, uint16(o.Flags)), o.Dest, &rec)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = ini.First(b, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	spoil(b, hl)
	if _, err := s.Write(b); err != nil {
		t.Fatal(err)
	}
	return s
}
