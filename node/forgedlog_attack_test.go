package node

import (
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// forgedLogOpens is how many forged opens the attacker sends.
const forgedLogOpens = 200

// TestAttackForgedOpensFloodTheLog: m, a neighbour of p with a valid
// certificate, opens forgedLogOpens streams to p whose headers p refuses
// as forged (hop 0 claiming another source, and a path not ending with
// m). Each refusal is answered, but the node's log must not take a line
// per stream: before, p wrote one WARN line for every forged open, so a
// neighbour writing 40 bytes of header had p write a line of about 200,
// as fast as it opened streams. Now p writes at most one such line per
// neighbour a minute, with the count of refusals, and every open is still
// refused.
func TestAttackForgedOpensFloodTheLog(t *testing.T) {
	c := newCluster(t, true)
	plog := c.captureLog("p")
	c.build("m-p")
	c.waitRoute("m", "p", 1)
	l := c.nodes["m"].link("p")
	refused := 0
	for i := range forgedLogOpens {
		o := &circuit.Open{Dest: "p", Source: "h", Service: EchoService, HopLimit: 15}
		if i%2 == 1 { // a path that does not end with m
			o = &circuit.Open{Dest: "p", Source: "h", Service: EchoService, Hop: 1, HopLimit: 15, Path: []string{"q"}}
		}
		s, err := openClearByHand(ctxT(t, 10*time.Second), l, o)
		if s != nil {
			s.Reset(circuit.CloseCancelled)
		}
		if err != nil && strings.Contains(err.Error(), circuit.Policy.String()) {
			refused++
		}
	}
	if refused != forgedLogOpens {
		t.Fatalf("p refused %d of %d forged opens", refused, forgedLogOpens)
	}
	wantOneLogLine(t, "p", plog.String(), "refused forged circuit source", refused,
		"forged opens from one neighbour", "")
	// The count is the node's, not the neighbour's: the line names it so.
	if strings.Contains(plog.String(), " refused_total=") || !strings.Contains(plog.String(), " node_refused_total=") {
		t.Fatalf("p's line counts the node's forged opens refused but not as node_refused_total:\n%s", plog.String())
	}
}
