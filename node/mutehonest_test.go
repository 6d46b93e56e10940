package node

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestFullTableKeepsHonestNeighbours: a node whose routing table is full
// (Limits.MaxRoutes: a mesh grown past the bound, or one filled by
// certificate holders) stores no route for a new neighbour, but hears its
// messages: no link to an honest peer that speaks routing is closed as
// one that carries nothing. Before, only the neighbour's own route
// stored counted, and the node closed every new link as mute and barred
// the honest peer ("discovery closes a link that carries no routing").
func TestFullTableKeepsHonestNeighbours(t *testing.T) {
	c := newCluster(t, true)
	seed := seededGossip(c, 4, 3, func(cfg *Config) {
		if cfg.Name == "a" {
			cfg.Limits.MaxRoutes = 2
		}
	})
	log := c.captureLog("a")
	a := c.add("a")
	seed(a)
	for _, name := range []string{"b", "c", "d"} {
		c.add(name)
	}
	for _, line := range muteCloses(log) {
		t.Errorf("a, its table full, closed an honest link as mute: %s", line)
	}
	var peers []string
	for _, l := range a.Links() {
		peers = append(peers, l.Peer)
	}
	t.Logf("a's links at the end: %v", peers)
}

// TestPeerFlapHoldNotTakenForMute: a node that restarted after a crash
// loop has no flap-damping state of its own, but its neighbours do: b
// holds a's new link from routing (up to 60 s) and sends it no update.
// b's hello on the held link tells a that b speaks routing, so a keeps
// the link for b's hold and does not bar b. Before, a closed its link to
// b after the 10 s mute grace and barred b for 5 minutes.
func TestPeerFlapHoldNotTakenForMute(t *testing.T) {
	c := newCluster(t, true)
	seed := seededGossip(c, 3, 2, nil)
	log := c.captureLog("a")
	b := c.add("b")
	seed(b)
	// b's damping state for a, as a crash loop of a (links to b coming
	// up every few seconds) leaves it.
	b.linkEvents.Lock()
	now := time.Now()
	b.flaps.peers = map[string]*flapState{"a": {penalty: flapMaxPenalty, at: now, lastUp: now}}
	b.linkEvents.Unlock()
	a := c.add("a")
	for _, line := range muteCloses(log) {
		t.Errorf("a closed its link to b, held by b's flap damping, as mute: %s", line)
	}
	a.disco.mu.Lock()
	barred := a.disco.mutedLocked("b", time.Now())
	a.disco.mu.Unlock()
	if barred {
		t.Errorf("a bars b, an honest peer whose flap damping held the link")
	}
}

// seededGossip gives the nodes c adds discovery with maxLinks and target
// links, each joining the gossip address of the node passed to the
// returned func (none before it is called), and applies more, if not nil,
// to each node's configuration after that.
func seededGossip(c *cluster, maxLinks, target int, more func(*Config)) (seed func(*Node)) {
	var addr string
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), MaxLinks: maxLinks, TargetLinks: target,
			Interval: 500 * time.Millisecond}
		if addr != "" {
			cfg.Discovery.Join = []string{addr}
		}
		if more != nil {
			more(cfg)
		}
	}
	return func(n *Node) { addr = n.Status().GossipAddr }
}

// muteCloses waits past the mute grace (10 s), or until log names a link
// closed as mute, and returns the lines of log that do.
func muteCloses(log fmt.Stringer) []string {
	mute := func(line string) bool {
		return strings.Contains(line, "carries no routing") || strings.Contains(line, "routing heard nothing")
	}
	for deadline := time.Now().Add(16 * time.Second); time.Now().Before(deadline) && !mute(log.String()); {
		time.Sleep(200 * time.Millisecond)
	}
	var lines []string
	for _, line := range strings.Split(log.String(), "\n") {
		if mute(line) {
			lines = append(lines, line)
		}
	}
	return lines
}
