package node

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// unresumedCircuits is how many resumable circuits the attacker drops.
const unresumedCircuits = 120

// TestAttackUnresumedCircuitsFloodTheLog: m, a member with a valid
// certificate, opens unresumedCircuits resumable circuits to d's echo
// service, and once each carried a byte both ways resets it with the code
// of a lost link and never resumes it. d's end of each waits its resume
// timeout for a new path and gives up. Before, d logged a line for each
// circuit it gave up: a member could make a destination write a line per
// circuit it opened and dropped. Now d writes at most one such line per
// source a minute, with its count, and still gives every circuit up.
func TestAttackUnresumedCircuitsFloodTheLog(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "d" {
			cfg.ResumeTimeout = 50 * time.Millisecond
		}
	}
	dlog := c.captureLog("d")
	c.build("m-d")
	c.waitRoute("m", "d", 1)
	m, d := c.nodes["m"], c.nodes["d"]
	failed := d.metrics.resume.failures.WithLabelValues("accept")
	before := counterValue(failed)

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	// A batch stays below d's bound on the circuits of one source waiting
	// for a resume (Limits.MaxParkedPerSource), which ends the oldest
	// without the resume timeout; the next starts once d gave the batch
	// up. (Without the race detector, batches sent back to back had more
	// than the bound waiting at once, and d ended 56 of 120 by it.)
	const batch = 20
	for i := range unresumedCircuits / batch {
		for range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := dropResumable(t, m, "d"); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(errs) > 0 {
			break
		}
		waitFor(t, "d to give up the batch", patience, func() bool {
			return counterValue(failed)-before >= float64((i+1)*batch)
		})
	}
	if len(errs) > 0 {
		t.Fatalf("%d of %d circuits did not carry their byte: %v", len(errs), unresumedCircuits, errs[0])
	}
	waitFor(t, "d to give up every dropped circuit", patience, func() bool {
		return counterValue(failed)-before >= unresumedCircuits
	})
	wantOneLogLine(t, "d", dlog.String(), "could not be resumed", int(counterValue(failed)-before),
		"circuits of one source it could not resume", "node_unresumed_total")
}

// dropResumable opens a resumable circuit from m to to's echo service,
// has one byte echoed (so that to's end holds the circuit), then resets
// it with the code of a lost link, which to's end waits to see resumed.
func dropResumable(t *testing.T, m *Node, to string) error {
	conn, err := m.Dial(ctxT(t, patience), to, EchoService)
	if err != nil {
		return err
	}
	rc, ok := conn.(*resumableConn)
	if !ok {
		conn.Close()
		t.Fatalf("dial returned %T, want a resumable circuit", conn)
	}
	rc.SetDeadline(time.Now().Add(patience))
	if _, err := rc.Write([]byte{'x'}); err != nil {
		rc.Reset(circuit.CloseLinkLost)
		return err
	}
	var b [1]byte
	_, err = io.ReadFull(rc, b[:])
	rc.Reset(circuit.CloseLinkLost)
	return err
}
