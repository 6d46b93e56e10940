package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/memlink"
)

// Links whose control queue is full drop routing messages (SendRouting
// fails with links.ErrQueueFull); a cold-started mesh converges all the
// same, the periodic summaries repairing what was dropped. Here every
// in-memory link holds one queued message at most (a byte bound of 1), so
// the full tables a new link brings, two messages or more at 40 nodes, are
// partly dropped.
func TestConvergesThroughFullControlQueues(t *testing.T) {
	c := newCluster(t, false)
	c.memNet = memlink.NewNetwork(memlink.Config{ControlBytes: 1})
	c.tweak = func(cfg *Config) { cfg.Routing.UpdateInterval = time.Second }
	const n = 40
	var edges []string
	for i := range n {
		edges = append(edges, fmt.Sprintf("n%d-n%d", i, (i+1)%n))
		if i%4 == 0 {
			edges = append(edges, fmt.Sprintf("n%d-n%d", i, (i+n/2)%n))
		}
	}
	c.build(edges...)
	c.waitConverged()
	var dropped float64
	for _, nd := range c.nodes {
		dropped += metricValue(t, nd, "circuitmesh_routing_dropped_total", "", "")
	}
	if dropped == 0 {
		t.Fatal("no routing message was dropped: the test did not test the repair")
	}
	t.Logf("%v routing messages dropped at full control queues", dropped)
}
