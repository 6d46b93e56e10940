package node

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// cutRelay is a relay hook that keeps the streams of the circuits it
// relays so that cut can reset them all at once, as a relay that lost a
// link or restarted would, while the circuits opened after it go on.
type cutRelay struct {
	mu      sync.Mutex
	streams []links.Stream
}

func (r *cutRelay) relay(in, out links.Stream) (links.Stream, links.Stream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.streams = append(r.streams, in, out)
	return in, out
}

// cut resets the streams of every circuit relayed so far.
func (r *cutRelay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.streams {
		s.Reset(uint64(circuit.CloseCode(circuit.CloseInternal).At(1)))
	}
	r.streams = nil
}

// On a diamond a–{b,c}–d, b stops forwarding and the circuit from a
// resumes through c; then, once the circuit made progress through c, c
// resets it (no lack of progress this time) while b still swallows what
// it relays and routing still prefers it. The circuit must remember that
// b made no progress and resume through c again: no redial goes through
// b, which would take the circuit's header to d and swallow d's answer.
//
// c resets the circuit only once d acknowledged, through c, bytes b never
// carried: a path reset before anything moved on it also counts as one
// that made no progress (circuit/progress.go), and the source then has
// two silent first hops to choose from.
func TestResumeRemembersSilentRelayAfterAnotherFailure(t *testing.T) {
	const (
		first = 4 << 20
		// Its write returns only once the source holds at most a window
		// unacknowledged: once d acknowledged more than first, which b,
		// swallowing everything after first, cannot have carried.
		extra = circuit.DefaultResumeWindow + 1<<20
		rest  = 2 << 20
	)
	var stuck atomic.Bool
	var throughB atomic.Int64 // the circuits b relayed
	cr := &cutRelay{}
	c := newCluster(t, true)
	buildDiamondWith(t, c, func(cfg *Config) {
		cfg.ResumeTimeout = 40 * time.Second
		switch cfg.Name {
		case "b":
			cfg.hooks = &hooks{relay: func(in, out links.Stream) (links.Stream, links.Stream) {
				throughB.Add(1)
				return stuckStream{in, &stuck}, stuckStream{out, &stuck}
			}}
		case "c":
			cfg.hooks = &hooks{relay: cr.relay}
		}
	})
	a := c.nodes["a"]
	resumes := func() float64 { return counterValue(a.metrics.resume.resumes.WithLabelValues("dial")) }
	failures := func() float64 { return counterValue(a.metrics.resume.failures.WithLabelValues("dial")) }

	conn, w, received, srvErr := sendAlongABD(t, c, first, first/2)
	defer conn.Close()
	stuck.Store(true)
	waitFor(t, "the circuit to resume through c", 60*time.Second, func() bool {
		return fmt.Sprint(conn.Path()) == "[a c d]" && resumes() >= 1
	})
	if err := w.write(extra); err != nil {
		t.Fatalf("write through c: %v", err)
	}
	if got := fmt.Sprint(conn.Path()); got != "[a c d]" {
		t.Fatalf("path after the write through c %s, want [a c d]", got)
	}
	before, viaB := resumes(), throughB.Load()
	cr.cut()
	waitFor(t, "a second resume, or a failed one", 120*time.Second, func() bool {
		return resumes() > before || failures() > 0
	})
	if n := failures(); n > 0 {
		t.Fatalf("after c reset the circuit, %v resume(s) failed at a: the redials went through b again", n)
	}
	if got := fmt.Sprint(conn.Path()); got != "[a c d]" {
		t.Fatalf("path after the second resume %s, want [a c d]", got)
	}
	if n := throughB.Load() - viaB; n > 0 {
		t.Errorf("after c reset the circuit, %d redial(s) went through b again", n)
	}
	if err := w.write(rest); err != nil {
		t.Fatalf("write after the second resume: %v", err)
	}
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	checkDigest(t, conn, w.sum(), received, srvErr)
}
