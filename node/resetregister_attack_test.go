package node

import (
	"bytes"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// Each resume of a circuit costs its destination a resumed first message
// kept in its replay register. A relay on the path that resets the
// circuit whenever it carries data (TestAttackRelayResetLoopNeverFails)
// gets only circuit.MaxResumesWithoutProgress resumes in a row out of
// it, or the resume timeout, before the circuit fails: d's register,
// sized 1,024 here (keys kept an hour, as in
// TestAttackReplayRegisterFill), keeps room, and x, which reaches d on
// a link of its own and never uses b, has its early circuits accepted.
// Before, a resumed through b about 70 times a second for as long as b
// liked: one circuit brought d's register to half full by itself, and
// from then on every source was held to its share (a 64th) and x's
// 16th early circuit was refused with retry (failing on its first
// read).
func TestAttackRelayResetLoopFillsReplayRegister(t *testing.T) {
	t.Parallel()
	const register = 1024
	var armed atomic.Bool
	var resets atomic.Int64
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.hooks = &hooks{strikes: register, strikeWindow: time.Hour}
		if cfg.Name == "b" {
			cfg.hooks.relay = func(in, out links.Stream) (links.Stream, links.Stream) {
				return in, &resetAfterStream{Stream: out, in: in, armed: &armed, resets: &resets, budget: 2 << 10}
			}
		}
	}
	c.build("a-b", "b-d", "x-d")
	c.waitRoute("a", "d", 2)
	c.waitRoute("x", "d", 1)
	a, x := c.nodes["a"], c.nodes["x"]
	for i := 0; i < 2; i++ { // x learns d's key and holds a session ticket
		if err := roundTrip(t, x, "d", EchoService, []byte("warm")); err != nil {
			t.Fatalf("x's warm-up circuit %d: %v", i, err)
		}
	}
	received, _ := sinkService(t, c.nodes["d"])
	conn, err := a.DialWith(ctxT(t, 10*time.Second), "d", "sink", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w := newSumWriter(conn)
	if err := w.write(256 << 10); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "d to receive a's first bytes", 60*time.Second, func() bool { return received.Load() > 0 })
	armed.Store(true)
	var failed atomic.Bool
	go func() { // blocks until the circuit fails or conn closes
		w.write(64 << 20)
		failed.Store(true)
	}()
	// Half the register, and then some, is what the loop took before.
	resumes := func() int { return int(counterValue(a.metrics.resume.resumes.WithLabelValues("dial"))) }
	deadline := time.Now().Add(3 * time.Minute)
	for !failed.Load() && resumes() < 600 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	armed.Store(false)
	t.Logf("b reset %d times, a resumed %d times, the circuit failed: %v", resets.Load(), resumes(), failed.Load())
	if !failed.Load() {
		t.Errorf("a's circuit kept resuming through b (%d resumes) with no error", resumes())
	}

	for i := 0; i < 24; i++ {
		ec, err := x.DialWith(ctxT(t, patience), "d", EchoService, DialOptions{Early: true})
		if err != nil {
			t.Fatalf("x's early circuit %d: %v", i, err)
		}
		msg := []byte("early bytes of x")
		_, werr := ec.Write(msg)
		ec.(Conn).CloseWrite()
		got, rerr := io.ReadAll(ec)
		ec.Close()
		if werr != nil || rerr != nil || !bytes.Equal(got, msg) {
			t.Fatalf("x's early circuit %d to d, which does not cross b, failed after b's resets: write %v, read %q, %v", i, werr, got, rerr)
		}
	}
}
