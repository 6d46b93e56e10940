package node

import (
	"bytes"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// The resume loop of a relay that resets with "link lost"
// (TestRedteamRelayResetLoopHoldsResumableCircuit) costs the destination
// a resumed first message per reset, each remembered by its replay
// register. One circuit of a looping through b brings d's register to
// half full by itself, and from then on every source is held to its
// share (a 64th) of the register: x, which reaches d on a link of its
// own and never uses b, has its early circuits refused with retry (they
// fail on their first read). The shares were meant to take 33
// certificates to bother an honest source; here one relay and one
// honest victim's circuit do it. The register is sized 1,024 (d keeps
// keys an hour, as TestAttackReplayRegisterFill does) so that the loop
// fills half of it within seconds; at the default 65,536 keys and 30 s,
// 16 such circuits keep it half full (about 70 resets a second each in
// these runs), and each other source is then refused beyond 34 early
// or resumed opens a second.
func TestRedteamRelayResetLoopFillsReplayRegister(t *testing.T) {
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
	go w.write(64 << 20) // blocks; ends when conn closes
	waitFor(t, "a to resume through b 600 times", 2*time.Minute, func() bool {
		return counterValue(a.metrics.resume.resumes.WithLabelValues("dial")) >= 600
	})
	armed.Store(false)
	t.Logf("b reset %d times", resets.Load())

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
