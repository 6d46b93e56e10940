package node

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// resetAfterStream is a relay's stream toward the destination that, once
// armed, forwards at most budget bytes of each circuit and then resets
// the circuit's two streams with "link lost", as if a link on the path
// had died. The budget lets a resume's open, handshake and resume frame
// through, never the data the source sends again after it.
type resetAfterStream struct {
	links.Stream
	in     links.Stream
	armed  *atomic.Bool
	resets *atomic.Int64
	budget int

	mu   sync.Mutex
	sent int
}

func (s *resetAfterStream) Write(p []byte) (int, error) {
	if s.armed.Load() {
		s.mu.Lock()
		over := s.sent+len(p) > s.budget
		if !over {
			s.sent += len(p)
		}
		s.mu.Unlock()
		if over {
			s.resets.Add(1)
			s.Stream.Reset(circuit.CloseLinkLost)
			s.in.Reset(circuit.CloseLinkLost)
			return 0, fmt.Errorf("reset by the relay")
		}
	}
	return s.Stream.Write(p)
}

// b, the preferred relay of a circuit from a to d on a diamond a–{b,c}–d,
// resets every circuit it relays with "link lost" as soon as the circuit
// carries data, while its links stay up: a reset a relay may send
// whenever it likes. The source suspends and resumes along the current
// route, through b again; that resumed path fails before anything moved
// on it, which counts as a failure with no progress, so the next resume
// tries c first (as around a relay that stops forwarding,
// TestResumeAroundRelayThatStopsForwarding) and the transfer completes
// intact. Before, every resume went through b again and the circuit
// stayed on [a b d] with nothing delivered and no error for as long as b
// liked (879 to 2,821 resumes in 40 s).
func TestAttackRelayResetLoopHoldsResumableCircuit(t *testing.T) {
	size := 8 << 20
	var armed atomic.Bool
	var resets atomic.Int64
	c := diamondRelayedByB(t, func(in, out links.Stream) (links.Stream, links.Stream) {
		return in, &resetAfterStream{Stream: out, in: in, armed: &armed, resets: &resets, budget: 2 << 10}
	})

	a := c.nodes["a"]
	conn, w, received, srvErr := sendAlongABD(t, c, size/4, size/8)
	defer conn.Close()
	armed.Store(true)
	// Whatever b relays from now on, it resets; the writes go on in the
	// background (they block once the window is full).
	wrote := writeRest(conn, w, size-size/4)
	at := received.Load()
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) && fmt.Sprint(conn.Path()) != "[a c d]" {
		time.Sleep(50 * time.Millisecond)
	}
	path := fmt.Sprint(conn.Path())
	t.Logf("after b began resetting: path %s, %d resets by b, %d resumes at a, %d resumed opens taken over at d, d received %d more bytes",
		path, resets.Load(), int(counterValue(a.metrics.resume.resumes.WithLabelValues("dial"))),
		int(counterValue(c.nodes["d"].metrics.resume.resumes.WithLabelValues("accept"))), received.Load()-at)
	if path != "[a c d]" {
		t.Fatalf("the circuit never left b: a resumed through the resetting relay again and again, %d bytes reached d in 40 s and no error reached the application", received.Load()-at)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("write after b began resetting: %v", err)
	}
	checkDigest(t, conn, w.sum(), received, srvErr)
}

// The same relay on the only path a–b–d: there is no other way to d, so
// the circuit fails, with an error its application sees, once
// circuit.MaxResumesWithoutProgress resumed paths in a row failed before
// anything moved on them, or the resume timeout (here 3 s) ran out since
// the circuit last made progress, whichever comes first. Each resume
// costs d a resumed first message in its replay register, so the
// resumes stay bounded too. Before, each reset was followed by a
// successful resume, the resume timeout never ran out, and the circuit
// hung (575 to 2,060 resumes in 30 s, no byte moved, no error).
func TestAttackRelayResetLoopNeverFails(t *testing.T) {
	t.Parallel()
	var armed atomic.Bool
	var resets atomic.Int64
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.ResumeTimeout = 3 * time.Second
		if cfg.Name == "b" {
			cfg.hooks = &hooks{relay: func(in, out links.Stream) (links.Stream, links.Stream) {
				return in, &resetAfterStream{Stream: out, in: in, armed: &armed, resets: &resets, budget: 2 << 10}
			}}
		}
	}
	c.build("a-b", "b-d")
	c.waitRoute("a", "d", 2)
	received, _ := sinkService(t, c.nodes["d"])
	a := c.nodes["a"]
	conn, err := a.DialWith(ctxT(t, 10*time.Second), "d", "sink", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w := newSumWriter(conn)
	if err := w.write(1 << 20); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "d to receive 512 KiB", 60*time.Second, func() bool { return received.Load() >= 512<<10 })
	armed.Store(true)
	at := received.Load()
	failed := make(chan error, 1)
	go func() { failed <- w.write(64 << 20) }()
	const wait = 30 * time.Second
	var werr error
	select {
	case werr = <-failed:
	case <-time.After(wait):
		t.Fatalf("%v after b began resetting (resume timeout 3 s): no error at the application, %d resets by b, %d resumes at a, %d bytes reached d meanwhile",
			wait, resets.Load(), int(counterValue(a.metrics.resume.resumes.WithLabelValues("dial"))), received.Load()-at)
	}
	resumes := int(counterValue(a.metrics.resume.resumes.WithLabelValues("dial")))
	t.Logf("the circuit failed after %d resets by b, %d resumes at a: %v", resets.Load(), resumes, werr)
	if !errors.Is(werr, circuit.ErrResumeLoop) && !errors.Is(werr, circuit.ErrResumeTimeout) {
		t.Fatalf("the write failed with %v, want circuit.ErrResumeLoop or circuit.ErrResumeTimeout", werr)
	}
	// The first path's failure and the first resumed path (on which d may
	// still acknowledge what it had received) are not counted.
	if limit := circuit.MaxResumesWithoutProgress + 2; resumes > limit {
		t.Fatalf("a resumed %d times through the resetting relay before the circuit failed, want at most %d", resumes, limit)
	}
}
