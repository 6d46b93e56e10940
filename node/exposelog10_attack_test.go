package node

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// exposeLogCircuits is how many circuits m opens to d's exposed service
// while the TCP service behind it is down: well within the budgets a
// member's opens meet at d (one-message handshakes, circuits per source).
const exposeLogCircuits = 48

// TestAttackExposedServiceDownFloodsTheLog: d exposes web, a local TCP
// service that is down (it refuses every connection), and m, a member the
// policy lets open web, opens exposeLogCircuits circuits to it one after
// the other. Before, d wrote a WARN line for each circuit ("connection
// dropped: cannot reach the other side"), so a member wrote d's log at
// the rate it could open circuits. Now d writes one such line a minute
// for the service, carrying its count, and still resets every circuit
// with circuit.CloseUnavailable.
func TestAttackExposedServiceDownFloodsTheLog(t *testing.T) {
	c := newCluster(t, true)
	dlog := c.captureLog("d")
	c.build("m-d")
	c.waitConverged()
	d, m := c.node("d"), c.node("m")
	stop, err := d.Expose("web", refusingTCPAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for i := range exposeLogCircuits {
		// The reset may overtake the accepted result: then Dial reports it.
		conn, err := m.DialWith(ctxT(t, 20*time.Second), "d", "web", DialOptions{NoResume: true})
		if err == nil {
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			_, err = io.ReadAll(conn)
			conn.Close()
		}
		var re *links.StreamResetError
		if !errors.As(err, &re) || circuit.CloseCode(re.Code).Reason() != circuit.CloseUnavailable {
			t.Fatalf("circuit %d to d's exposed service, its TCP service down: %v, want a reset with code %d",
				i, err, circuit.CloseUnavailable)
		}
	}
	// d writes its line before it resets the circuit: every line due is
	// in the log once m saw the last reset.
	wantOneLogLine(t, "d", dlog.String(), "connection dropped: cannot reach the other side", exposeLogCircuits,
		"circuits to an exposed service whose TCP service is down", "dropped_total")
}
