package node

import (
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
)

// TestBogusOneMessageOpensSpendTheBudget: one-message (IK) first messages
// that never decrypt cost d a Diffie-Hellman operation each (es, before
// s fails). They spend the budget of full handshakes: with a budget of 2
// a second, d answers a few with "retry" and refuses the rest
// "overloaded" (before, all 200 were answered "retry" in 70 ms).
func TestBogusOneMessageOpensSpendTheBudget(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.Limits.FullHandshakesPerLink = 2; cfg.Limits.FullHandshakes = 2 }
	c.build("m-d")
	m, d := c.nodes["m"], c.nodes["d"]
	l := m.link("d")
	rec := d.seal.Load().Record()
	codes := map[circuit.Code]int{}
	start := time.Now()
	for i := 0; i < 200; i++ {
		s, err := l.OpenStream(ctxT(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		o := &circuit.Open{Dest: "d", Source: "m", Service: EchoService, HopLimit: 15, Flags: circuit.FlagEarly | circuit.FlagSealed}
		b, _ := o.AppendTo(nil)
		hl := len(b)
		ini, err := m.seal.Load().Initiate(seal.Prologue(o.Dest, o.Source, o.Service, uint16(o.Flags)), o.Dest, &rec)
		if err != nil {
			t.Fatal(err)
		}
		if b, err = ini.First(b, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
		b[hl+2+1+32+3] ^= 0xff // inside the encrypted static key: fails after the es DH
		if _, err := s.Write(b); err != nil {
			t.Fatal(err)
		}
		res, err := circuit.ReadResult(s, 0)
		s.Reset(circuit.CloseCancelled)
		if err != nil {
			t.Fatal(err)
		}
		codes[res.Code]++
	}
	el := time.Since(start)
	t.Logf("200 bogus IK first messages in %v: codes %v", el, codes)
	if limit := 2 + 2*int(el.Seconds()+1); codes[circuit.Retry] > limit {
		t.Errorf("%d of 200 bogus one-message opens were answered (retry) in %v, beyond the budget of 2 a second (at most %d)", codes[circuit.Retry], el, limit)
	}
	if codes[circuit.Overloaded] == 0 {
		t.Errorf("no bogus one-message open was refused overloaded: %v", codes)
	}
}
