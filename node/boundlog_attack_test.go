package node

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// boundLogCircuits is how many circuits the attacker leaves stuck.
const boundLogCircuits = 200

// TestAttackStuckCircuitsFloodTheRelayLog: m, a member with a valid
// certificate, opens boundLogCircuits circuits through its neighbour r to
// a service on d that reads and never answers, half-closes each and leaves
// it silent, so that r ends every one by its half-closed bound
// (Limits.RelayHalfClosed). Before, r logged a line for each circuit so
// ended: a member could have a relay write a line per circuit it opened.
// Now r writes at most one such line per neighbour a minute, with its
// count, and still ends every circuit.
func TestAttackStuckCircuitsFloodTheRelayLog(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.Limits.RelayHalfClosed = 100 * time.Millisecond }
	rlog := c.captureLog("r")
	c.build("m-r", "r-d")
	c.waitRoute("m", "d", 2)
	hold := make(chan struct{})
	defer close(hold)
	serve(t, c.nodes["d"], "read-then-hold", func(conn io.ReadWriteCloser) {
		io.Copy(io.Discard, conn)
		<-hold
	})
	m := c.nodes["m"]
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		ended int
		other []error
	)
	const batch = 20 // circuits left stuck at once
	for range boundLogCircuits / batch {
		for range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := stuckCircuit(t, m)
				mu.Lock()
				defer mu.Unlock()
				var re *links.StreamResetError
				if errors.As(err, &re) && circuit.CloseCode(re.Code).Reason() == circuit.CloseTimeout {
					ended++
				} else {
					other = append(other, err)
				}
			}()
		}
		wg.Wait()
	}
	if len(other) > 0 || ended != boundLogCircuits {
		t.Fatalf("r ended %d of %d stuck circuits by its bound; others: %v", ended, boundLogCircuits, other)
	}
	// m sees each reset before r's splice has ended and counted it: wait
	// for r's count (the node's own circuits through r, its probes of the
	// mesh, may be ended by the short bound too and counted with m's).
	r := c.nodes["r"]
	waitFor(t, "r to count every circuit it ended by a bound", 20*time.Second, func() bool {
		return r.limits.boundEnded.Load() >= boundLogCircuits
	})
	wantOneLogLine(t, "r", rlog.String(), "relayed circuit ended by a bound", ended,
		"circuits from one neighbour ended by a bound", "node_ended_total")
}

// wantOneLogLine checks that log holds one line with msg for n events of
// one peer (two if a minute turned meanwhile) and, unless countKey is
// empty, that it carries the node's count as countKey.
func wantOneLogLine(t *testing.T, who, log, msg string, n int, events, countKey string) {
	t.Helper()
	lines := strings.Count(log, msg)
	t.Logf("%s logged %d lines about %d %s", who, lines, n, events)
	if lines == 0 || lines > 2 {
		t.Fatalf("%s logged %d lines for %d %s, want 1 or 2:\n%s", who, lines, n, events, log)
	}
	if countKey != "" && !strings.Contains(log, " "+countKey+"=") {
		t.Fatalf("%s's line does not carry the node's count as %s:\n%s", who, countKey, log)
	}
}

// stuckCircuit opens a circuit from m to d's read-then-hold service,
// writes to it, half-closes it and reads until the circuit ends: the
// error it ends with.
func stuckCircuit(t *testing.T, m *Node) error {
	conn, err := m.DialWith(ctxT(t, 20*time.Second), "d", "read-then-hold", DialOptions{NoResume: true})
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := conn.Write([]byte("request")); err != nil {
		return err
	}
	conn.CloseWrite()
	_, err = io.ReadAll(conn)
	return err
}
