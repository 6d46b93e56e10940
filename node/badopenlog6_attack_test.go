package node

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestAttackBadOpenHeadersFloodTheDebugLog: a node refuses a stream whose
// open header it cannot read (here: a service with escapes, a destination
// that is not a node name) and logs it at DEBUG. m, a neighbour of x with
// a valid certificate, sends 100 such headers one after the other while
// x logs at DEBUG. Before, x wrote a line for each, 100 lines; now one
// line for m this minute, carrying the count of such refusals, and every
// open is still refused (code Policy) and counted
// (circuitmesh_circuits_refused_total{code="policy"}). The same for 100
// sealed opens whose end-to-end handshake fails (an unknown mode): before,
// 100 lines; now one.
func TestAttackBadOpenHeadersFloodTheDebugLog(t *testing.T) {
	const bad = 100
	c := newCluster(t, true)
	xlog := new(syncBuf)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "x" {
			cfg.Logger = slog.New(slog.NewTextHandler(xlog, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	c.build("m-x")
	c.waitRoute("m", "x", 1)
	m, x := c.nodes["m"], c.nodes["x"]
	policy := x.metrics.circuitsRefused.WithLabelValues(codeLabel(circuit.Policy))
	refused0 := counterValue(policy)

	for i := range bad {
		o := &circuit.Open{Dest: "x", Source: "m", Service: "\x1b[2Jsink", HopLimit: 15}
		if i%2 == 1 {
			o.Service, o.Dest = "sink", "X\x1b[2J"
		}
		s, err := openClearByHand(ctxT(t, 10*time.Second), m.link("x"), o)
		if s != nil {
			s.Reset(circuit.CloseCancelled)
		}
		if err == nil || !strings.Contains(err.Error(), "refused: "+circuit.Policy.String()+": ") {
			t.Fatalf("bad open %d: %v, want a policy refusal", i, err)
		}
	}
	if got := counterValue(policy) - refused0; got != bad {
		t.Errorf("x counted %v policy refusals, want %d", got, bad)
	}
	lines := 0
	for _, line := range strings.Split(xlog.String(), "\n") {
		if strings.Contains(line, `msg="bad open header"`) {
			lines++
			if !strings.Contains(line, "peer=m") || !strings.Contains(line, "refused_total=") {
				t.Errorf("line lacks the peer or the count: %s", line)
			}
		}
	}
	if lines != 1 {
		t.Errorf("x wrote %d lines for %d bad open headers from one neighbour within a minute, want 1", lines, bad)
	}

	// Sealed opens to x whose first handshake message names no mode x
	// knows: each is refused policy after its header was read.
	failed0 := x.limits.e2eFailed.Load()
	refused0 = counterValue(policy)
	for i := range bad {
		s, err := m.link("x").OpenStream(ctxT(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		o := &circuit.Open{Dest: "x", Source: "m", Service: EchoService, HopLimit: 15, Flags: circuit.FlagEarly | circuit.FlagSealed}
		b, _ := o.AppendTo(nil)
		b = append(append(b, 0, 40, 9), make([]byte, 40)...) // length 40, mode 9
		if _, err := s.Write(b); err != nil {
			t.Fatal(err)
		}
		res, err := circuit.ReadResult(s, 0)
		s.Reset(circuit.CloseCancelled)
		if err != nil || res.Code != circuit.Policy {
			t.Fatalf("sealed open %d with an unknown mode: %+v, %v; want a policy refusal", i, res, err)
		}
	}
	if got := x.limits.e2eFailed.Load() - failed0; got != bad {
		t.Errorf("x counted %d failed handshakes, want %d", got, bad)
	}
	if got := counterValue(policy) - refused0; got != bad {
		t.Errorf("x counted %v policy refusals of sealed opens, want %d", got, bad)
	}
	if got := strings.Count(xlog.String(), `msg="end-to-end handshake failed"`); got != 1 {
		t.Errorf("x wrote %d lines for %d failed handshakes from one neighbour within a minute, want 1", got, bad)
	}
}

// TestOpenHeaderBeyondMaxHeaderSizeRefused: m, a neighbour of x with a
// valid certificate, sends an open header of about 1,000 bytes, whole
// and valid, to x, whose Limits.MaxHeaderSize is 512: x refuses it with
// code Policy, saying it could not read the open header, instead of
// opening the circuit.
func TestOpenHeaderBeyondMaxHeaderSizeRefused(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "x" {
			cfg.Limits.MaxHeaderSize = 512
		}
	}
	c.build("m-x")
	c.waitRoute("m", "x", 1)
	s, err := c.nodes["m"].link("x").OpenStream(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset(circuit.CloseCancelled)
	o := &circuit.Open{Dest: "x", Source: "m", Service: EchoService, HopLimit: 15, TraceState: strings.Repeat("x", 1000)}
	b, err := o.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(b); err != nil {
		t.Fatal(err)
	}
	res, err := circuit.ReadResult(s, 0)
	if err != nil || res.Code != circuit.Policy || !strings.Contains(res.Reason, "read open header") {
		t.Fatalf("an open header of %d bytes to a node taking 512: %+v, %v; want a policy refusal reading the header", len(b), res, err)
	}
}
