package node

import (
	"bytes"
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestAttackReplayRegisterFill: m, a member with a valid certificate,
// sends d one-message (IK) opens as fast as d answers them, each a fresh
// first message that d's replay register must remember for 30 s. Without
// a per-source share m fills the register alone, and from then on d
// answers every one-message or resumed open, whoever sends it, with
// retry: a's early circuits to d (what Forward and `circuitmesh dial`
// open) fail on their first Read. With the per-source share m is refused
// once the register is half full, and a, under its share, still gets in:
// its early circuits carry their bytes.
func TestAttackReplayRegisterFill(t *testing.T) {
	const register = 1024
	c := newCluster(t, true)
	// The register forgets a first message after its window (30 s): m's
	// 1,280 opens took longer than that on a starved machine, and d then
	// rightly remembered more than half a register of them in all, never
	// at once. A window longer than the test makes the count exact.
	c.tweak = func(cfg *Config) { cfg.hooks = &hooks{strikes: register, strikeWindow: time.Hour} }
	c.build("a-d", "m-d")
	c.waitRoute("a", "d", 1)
	a, d, m := c.nodes["a"], c.nodes["d"], c.nodes["m"]
	// a knows d's key (a full handshake) and holds a session ticket (a
	// one-message open): its next opens are resumed, as in a warm mesh.
	for i := 0; i < 2; i++ {
		if err := roundTrip(t, a, "d", EchoService, []byte("warm")); err != nil {
			t.Fatalf("warm-up circuit %d: %v", i, err)
		}
	}

	rec := d.seal.Load().Record()
	accepted, retried := 0, 0
	for i := 0; i < register+register/4; i++ {
		code, err := sendFirstMessage(ctxT(t, patience), m, &rec, "d")
		if err != nil {
			t.Fatalf("m's open %d: %v", i, err)
		}
		switch code {
		case circuit.Accepted:
			accepted++
		case circuit.Retry, circuit.Overloaded:
			// refused by m's share of the register, or, once its
			// refusals spent the link's budget of handshakes that
			// cost d a Diffie-Hellman, by that budget
			retried++
		default:
			t.Fatalf("m's open %d: %v", i, code)
		}
	}
	t.Logf("m's first messages: %d remembered by d, %d refused with retry", accepted, retried)
	if accepted > register/2 {
		t.Errorf("d remembered %d first messages of m, want at most %d (half the register)", accepted, register/2)
	}

	for i := 0; i < register/64-2; i++ {
		conn, err := a.DialWith(ctxT(t, patience), "d", EchoService, DialOptions{Early: true})
		if err != nil {
			t.Fatalf("a's early circuit %d: %v", i, err)
		}
		msg := []byte("early bytes of a")
		if _, err := conn.Write(msg); err != nil {
			conn.Close()
			t.Fatalf("a's early circuit %d during m's flood: write: %v", i, err)
		}
		conn.CloseWrite()
		got, err := io.ReadAll(conn)
		conn.Close()
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("a's early circuit %d during m's flood: read %q, %v", i, got, err)
		}
	}
}

// sendFirstMessage opens a circuit from m to dest's echo service by hand
// on m's link to dest: the open header and a fresh first message (resumed
// when m holds a session ticket of dest, else one-message), reads the
// result and resets the stream.
func sendFirstMessage(ctx context.Context, m *Node, rec *seal.KeyRecord, dest string) (circuit.Code, error) {
	o := &circuit.Open{Dest: dest, Source: m.Name(), Service: EchoService, HopLimit: 16}
	s, code, err := openByHand(ctx, m, m.link(dest), o, rec)
	if s != nil {
		s.Reset(circuit.CloseCancelled)
	}
	return code, err
}

// openByHand opens a sealed circuit with header o on l, m's link: it
// writes the header and a first message made with m's keys (resumed when
// m holds a session ticket of o.Dest, else one-message to rec, or the
// full handshake's when rec is nil) and reads the result. The caller
// owns the stream, nil only when it could not be opened.
func openByHand(ctx context.Context, m *Node, l links.Link, o *circuit.Open, rec *seal.KeyRecord) (links.Stream, circuit.Code, error) {
	return openByHandWith(ctx, m, l, o, rec, false, nil)
}

// openByHandWith is openByHand; fresh leaves out m's session ticket, and
// a one-message first message carries early.
func openByHandWith(ctx context.Context, m *Node, l links.Link, o *circuit.Open, rec *seal.KeyRecord, fresh bool, early []byte) (links.Stream, circuit.Code, error) {
	s, err := l.OpenStream(ctx)
	if err != nil {
		return nil, 0, err
	}
	o.Flags |= circuit.FlagEarly | circuit.FlagSealed
	b, err := o.AppendTo(nil)
	if err != nil {
		return s, 0, err
	}
	initiate := m.seal.Load().Initiate
	if fresh {
		initiate = m.seal.Load().InitiateFresh
	}
	ini, err := initiate(seal.Prologue(o.Dest, o.Source, o.Service, uint16(o.Flags)), o.Dest, rec)
	if err != nil {
		return s, 0, err
	}
	if ini.Full() {
		early = nil
	}
	if b, err = ini.First(b, early, time.Now()); err != nil {
		return s, 0, err
	}
	if _, err := s.Write(b); err != nil {
		return s, 0, err
	}
	res, err := circuit.ReadResult(s, 0)
	if err != nil {
		return s, 0, err
	}
	return s, res.Code, nil
}

// BenchmarkAttackReplayRegisterFill measures how fast one member fills a
// destination's replay register at its default size: m holds a session
// ticket of d and sends d fresh resumed first messages from 16 goroutines
// (attacker and destination share the machine), until d first answers
// retry or 40 s passed. It reports the first messages d remembered, how
// many a second, and when d first refused (0: never). The register
// forgets keys after 30 s, so an attacker that fills it within 30 s can
// keep it full:
// go test -run '^$' -bench AttackReplayRegisterFill -benchtime 1x ./node/
func BenchmarkAttackReplayRegisterFill(b *testing.B) {
	for range b.N {
		c := newCluster(b, true)
		c.build("m-d")
		d, m := c.nodes["d"], c.nodes["m"]
		for i := 0; i < 2; i++ { // a full handshake, then a one-message one: m holds a ticket
			if err := roundTrip(b, m, "d", EchoService, []byte("warm")); err != nil {
				b.Fatal(err)
			}
		}
		rec := d.seal.Load().Record()
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		var accepted atomic.Int64
		var refusedAt atomic.Int64
		start := time.Now()
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					code, err := sendFirstMessage(ctx, m, &rec, "d")
					switch {
					case err != nil:
					case code == circuit.Accepted:
						accepted.Add(1)
					case code == circuit.Retry:
						refusedAt.CompareAndSwap(0, int64(time.Since(start)))
						cancel()
					}
				}
			}()
		}
		wg.Wait()
		cancel()
		el := time.Since(start)
		b.ReportMetric(float64(accepted.Load()), "remembered")
		b.ReportMetric(float64(accepted.Load())/el.Seconds(), "remembered/s")
		b.ReportMetric(time.Duration(refusedAt.Load()).Seconds(), "first-retry-s")
	}
	b.ReportMetric(0, "ns/op")
}
