package node

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/internal/cpuquota"
)

// TestStarvedGossipRefusesNoHonestStream: 30 nodes on loopback join one
// seed in a process allowed 30 ms of CPU per 100 ms (a cluster on one
// starved host: one source prefix), and each node's gossip guard refuses
// none of their streams. Before, the guard closed a stream whose first
// bytes had not come within 2 s whatever the slots free, and a starved
// member takes that long between its dial and its first write (memberlist
// encodes, compresses and encrypts its state first): 68 honest streams
// refused as slow at 25 of the nodes in one run.
func TestStarvedGossipRefusesNoHonestStream(t *testing.T) {
	if testing.Short() {
		t.Skip("30 gossip nodes starved of CPU take minutes")
	}
	cpuquota.Under(t, 30*time.Millisecond, 100*time.Millisecond)
	const n = 30
	c := newCluster(t, false)
	var seed string
	c.tweak = gossipTweak(&seed, 8, 4)
	var nodes []*Node
	for i := range n {
		name := fmt.Sprintf("circuitmesh-%d", i)
		c.leafs[name] = i%5 == 4
		nodes = append(nodes, c.add(name))
		if seed == "" {
			seed = nodes[0].Status().GossipAddr
		}
	}
	waitFor(t, "every node to join the seed's gossip", 5*time.Minute, func() bool {
		for _, nd := range nodes {
			if nd.disco.ml.NumMembers() < 2 {
				return false
			}
		}
		return true
	})
	// A minute of gossip among the starved nodes: push-pulls, and TCP
	// pings where UDP ones time out.
	time.Sleep(time.Minute)
	var refused []string
	for _, nd := range nodes {
		for _, r := range []string{refuseBusy, refuseShare, refuseEvicted, refuseSlow} {
			if v := counterValue(nd.disco.guard.metric.WithLabelValues("stream", r)); v > 0 {
				refused = append(refused, fmt.Sprintf("%s %s=%v", nd.Name(), r, v))
			}
		}
	}
	if len(refused) > 0 {
		t.Errorf("the gossip guards of %d starved honest nodes on one host refused their streams: %s", n, strings.Join(refused, ", "))
	}
}
