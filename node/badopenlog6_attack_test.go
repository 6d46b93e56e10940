package node

import (
	"log/slog"
	"strings"
	"sync/atomic"
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

// linkedToLimited is m and its neighbour x, x's limits set by limit, once
// m has a route to x.
func linkedToLimited(t *testing.T, limit func(*Limits)) (m, x *Node) {
	t.Helper()
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "x" {
			limit(&cfg.Limits)
		}
	}
	c.build("m-x")
	c.waitRoute("m", "x", 1)
	return c.nodes["m"], c.nodes["x"]
}

// TestOpenHeaderBeyondMaxHeaderSizeRefused: m, a neighbour of x with a
// valid certificate, sends an open header of about 1,000 bytes, whole
// and valid, to x, whose Limits.MaxHeaderSize is 512: x refuses it with
// code Policy, saying it could not read the open header, instead of
// opening the circuit.
func TestOpenHeaderBeyondMaxHeaderSizeRefused(t *testing.T) {
	m, _ := linkedToLimited(t, func(l *Limits) { l.MaxHeaderSize = 512 })
	s, err := m.link("x").OpenStream(ctxT(t, 10*time.Second))
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

// TestOpenHeaderTimeoutRefusedPolicy: m, a neighbour of x with a valid
// certificate, sends a whole and valid open header one byte every
// 100 ms, far more than x's Limits.HeaderTimeout (1 s here) in all, each
// byte well within it. x refuses the stream with code Policy, saying it
// could not read the open header, once the timeout has passed from the
// stream's start and before the header is whole (the timeout bounds the
// whole header, not each read), and counts the refusal
// (circuitmesh_circuits_refused_total{code="policy"}).
func TestOpenHeaderTimeoutRefusedPolicy(t *testing.T) {
	const timeout = time.Second
	m, x := linkedToLimited(t, func(l *Limits) { l.HeaderTimeout = timeout })
	policy := x.metrics.circuitsRefused.WithLabelValues(codeLabel(circuit.Policy))
	refused0 := counterValue(policy)
	// A header of 100 bytes or so: whole after some 10 s, however late x
	// starts reading it.
	b, err := (&circuit.Open{Dest: "x", Source: "m", Service: EchoService, HopLimit: 15, TraceState: strings.Repeat("x", 75)}).AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	if trickle := time.Duration(len(b)) * 100 * time.Millisecond; trickle < 8*timeout {
		t.Fatalf("a header of %d bytes takes %v at a byte per 100 ms, want 8 times the timeout", len(b), trickle)
	}
	s, err := m.link("x").OpenStream(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var sent atomic.Int64
	done := make(chan struct{})
	defer func() {
		s.Reset(circuit.CloseCancelled)
		<-done
	}()
	go func() {
		defer close(done)
		for _, c := range b {
			if _, err := s.Write([]byte{c}); err != nil {
				return // x refused the stream, or the test reset it
			}
			sent.Add(1)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	res, err := circuit.ReadResult(s, 0)
	took := time.Since(start)
	t.Logf("an open header of %d bytes sent a byte per 100 ms: %d sent when x answered %+v, %v after %v", len(b), sent.Load(), res, err, took.Round(time.Millisecond))
	if err != nil || res.Code != circuit.Policy || !strings.Contains(res.Reason, "read open header") {
		t.Fatalf("an open header slower than x's HeaderTimeout: %+v, %v; want a policy refusal reading the header", res, err)
	}
	if took < timeout || sent.Load() >= int64(len(b)) {
		t.Errorf("x refused after %v, %d of %d header bytes sent; want after its HeaderTimeout of %v and before the header was whole", took, sent.Load(), len(b), timeout)
	}
	if got := counterValue(policy) - refused0; got != 1 {
		t.Errorf("x counted %v policy refusals, want 1", got)
	}
}
