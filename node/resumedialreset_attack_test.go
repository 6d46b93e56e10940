package node

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// answerResetStream is a relay's stream toward the source of a circuit:
// it resets the circuit's two streams with "link lost" instead of
// passing back the first bytes of the answer (the result and the
// handshake's reply), while the relay's links stay up. A dial through it
// fails before the destination's answer reaches the source.
type answerResetStream struct {
	links.Stream
	out    links.Stream
	resets *atomic.Int64
}

func (s *answerResetStream) Write(p []byte) (int, error) {
	s.resets.Add(1)
	s.out.Reset(circuit.CloseLinkLost)
	s.Stream.Reset(circuit.CloseLinkLost)
	return 0, fmt.Errorf("reset by the relay")
}

// diamondRelayedByB builds the diamond a–{b,c}–d with b, the preferred
// relay, relaying through relay, and waits for c's own link to d: not a
// detour through a and b is what a resume steered away from b can take;
// and for c's route to d at a, the next hop a dial passes b over for.
func diamondRelayedByB(t *testing.T, relay func(in, out links.Stream) (links.Stream, links.Stream)) *cluster {
	return diamondRelayedByBWith(t, relay, nil)
}

// diamondRelayedByBWith is diamondRelayedByB with tweak applied to each
// node's Config last.
func diamondRelayedByBWith(t *testing.T, relay func(in, out links.Stream) (links.Stream, links.Stream), tweak func(*Config)) *cluster {
	c := newCluster(t, true)
	buildDiamondWith(t, c, func(cfg *Config) {
		if cfg.Name == "b" {
			cfg.hooks = &hooks{relay: relay}
		}
		if tweak != nil {
			tweak(cfg)
		}
	})
	c.waitNextHop("c", "d", "d")
	waitFor(t, "c to advertise its route to d to a", patience, func() bool {
		return slices.Contains(c.nodes["a"].router.advertisers("d"), "c")
	})
	return c
}

// writeRest writes n more bytes with w and then half-closes conn, in the
// background; the channel gets the outcome.
func writeRest(conn Conn, w *sumWriter, n int) <-chan error {
	wrote := make(chan error, 1)
	go func() {
		if err := w.write(n); err != nil {
			wrote <- err
			return
		}
		wrote <- conn.CloseWrite()
	}()
	return wrote
}

// b, the preferred relay of a circuit from a to d on a diamond a–{b,c}–d,
// resets the circuit it carries with "link lost" once it carries data,
// and then resets every circuit it is asked to open (each resume's open)
// with "link lost" before the destination's answer reaches a, while its
// links stay up. The resume should try c, which carries the circuit at
// once. Before, the resume's dial took b's reset for a lost link and
// waited for routing to offer another next hop, which it never did (b's
// links are up): the circuit had no path for the dial timeout (10 s) and
// with a resume timeout below it failed without trying c.
func TestAttackRelayResetsResumeDialsStallsCircuit(t *testing.T) {
	size := 8 << 20
	var armed atomic.Bool
	var resets atomic.Int64
	c := diamondRelayedByB(t, func(in, out links.Stream) (links.Stream, links.Stream) {
		if armed.Load() {
			return &answerResetStream{Stream: in, out: out, resets: &resets}, out
		}
		return in, &resetAfterStream{Stream: out, in: in, armed: &armed, resets: &resets}
	})
	a := c.nodes["a"]
	conn, w, received, srvErr := sendAlongABD(t, c, size/4, size/8)
	defer conn.Close()
	armed.Store(true)
	wrote := writeRest(conn, w, size-size/4)
	// Wait for b to reset the circuit's path, then for the resume.
	waitFor(t, "b to reset the circuit", 60*time.Second, func() bool { return resets.Load() > 0 })
	broke := time.Now()
	const within = 5 * time.Second
	for time.Since(broke) < 30*time.Second && fmt.Sprint(conn.Path()) != "[a c d]" {
		time.Sleep(20 * time.Millisecond)
	}
	stall := time.Since(broke)
	t.Logf("path %s %v after b reset the circuit; %d resets by b, %d resumes at a",
		conn.Path(), stall.Round(time.Millisecond), resets.Load(), int(counterValue(a.metrics.resume.resumes.WithLabelValues("dial"))))
	if fmt.Sprint(conn.Path()) != "[a c d]" || stall > within {
		t.Fatalf("the circuit took %v to resume through c (path %s), want within %v: each resume's dial through b waited for a new next hop while b's links stayed up",
			stall.Round(time.Millisecond), conn.Path(), within)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("write after b began resetting: %v", err)
	}
	checkDigest(t, conn, w.sum(), received, srvErr)
}
