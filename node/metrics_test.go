package node

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// metricValue is the value of the counter or gauge name{label=value} of
// n (the sample count for a histogram), or -1 when n does not export it.
func metricValue(t *testing.T, n *Node, name, label, value string) float64 {
	t.Helper()
	fams, err := n.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				match = match || lp.GetName() == label && lp.GetValue() == value
			}
			if !match {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// A relay's byte counters move while its circuit carries data, not only
// when the circuit ends.
func TestRelayBytesCountedWhileTheCircuitRuns(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-r", "r-b")
	c.waitRoute("a", "b", 2)
	r := c.nodes["r"]
	conn, err := c.nodes["a"].Dial(ctxT(t, 10*time.Second), "b", EchoService)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const size = 256 << 10
	go conn.Write(make([]byte, size))
	if _, err := io.ReadFull(conn, make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	// The echo came back through r, and the circuit is still open.
	if r.circuits.relayed() != 1 {
		t.Fatalf("r relays %d circuits, want the open one", r.circuits.relayed())
	}
	up := metricValue(t, r, "circuitmesh_relay_bytes_total", "direction", "up")
	down := metricValue(t, r, "circuitmesh_relay_bytes_total", "direction", "down")
	if up < size || down < size {
		t.Fatalf("while the circuit is open r counts %v bytes up and %v down, want at least %d each way", up, down, size)
	}
	conn.Close()
	waitFor(t, "r's relay to end", 20*time.Second, func() bool { return r.circuits.relayed() == 0 })
	if after := metricValue(t, r, "circuitmesh_relay_bytes_total", "direction", "up"); after < up {
		t.Fatalf("relay bytes up went back from %v to %v when the circuit ended", up, after)
	}
}

// Dials are timed by result, and links' RTT is sampled into a histogram.
func TestOpenTimeAndLinkRTTHistograms(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	a := c.nodes["a"]
	if err := roundTrip(t, a, "b", EchoService, []byte("timed")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Dial(ctxT(t, 10*time.Second), "b", "missing"); !errors.Is(err, circuit.ErrNoService) {
		t.Fatalf("dial of a missing service: %v", err)
	}
	if n := metricValue(t, a, "circuitmesh_circuit_open_seconds", "result", "accepted"); n != 1 {
		t.Errorf("%v accepted opens timed, want 1", n)
	}
	if n := metricValue(t, a, "circuitmesh_circuit_open_seconds", "result", "no_such_service"); n != 1 {
		t.Errorf("%v refused opens timed, want 1", n)
	}
	waitFor(t, "a link RTT sample", 20*time.Second, func() bool {
		return metricValue(t, a, "circuitmesh_link_rtt_sampled_seconds", "", "") > 0
	})
}
