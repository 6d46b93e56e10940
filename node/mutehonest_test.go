package node

import (
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
	var seed string
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), MaxLinks: 4, TargetLinks: 3,
			Interval: 500 * time.Millisecond}
		if seed != "" {
			cfg.Discovery.Join = []string{seed}
		}
		if cfg.Name == "a" {
			cfg.Limits.MaxRoutes = 2
		}
	}
	log := c.captureLog("a")
	a := c.add("a")
	seed = a.Status().GossipAddr
	for _, name := range []string{"b", "c", "d"} {
		c.add(name)
	}
	deadline := time.Now().Add(16 * time.Second) // past the mute grace (10 s)
	for time.Now().Before(deadline) {
		if strings.Contains(log.String(), "carries no routing") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, line := range strings.Split(log.String(), "\n") {
		if strings.Contains(line, "carries no routing") || strings.Contains(line, "routing heard nothing") {
			t.Errorf("a, its table full, closed an honest link as mute: %s", line)
		}
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
	var seed string
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), MaxLinks: 3, TargetLinks: 2,
			Interval: 500 * time.Millisecond}
		if seed != "" {
			cfg.Discovery.Join = []string{seed}
		}
	}
	log := c.captureLog("a")
	b := c.add("b")
	seed = b.Status().GossipAddr
	// b's damping state for a, as a crash loop of a (links to b coming
	// up every few seconds) leaves it.
	b.linkEvents.Lock()
	now := time.Now()
	b.flaps.peers = map[string]*flapState{"a": {penalty: flapMaxPenalty, at: now, lastUp: now}}
	b.linkEvents.Unlock()
	a := c.add("a")
	deadline := time.Now().Add(16 * time.Second) // past the mute grace (10 s)
	for time.Now().Before(deadline) && !strings.Contains(log.String(), "carries no routing") {
		time.Sleep(200 * time.Millisecond)
	}
	for _, line := range strings.Split(log.String(), "\n") {
		if strings.Contains(line, "carries no routing") {
			t.Errorf("a closed its link to b, held by b's flap damping, as mute: %s", line)
		}
	}
	a.disco.mu.Lock()
	barred := a.disco.mutedLocked("b", time.Now())
	a.disco.mu.Unlock()
	if barred {
		t.Errorf("a bars b, an honest peer whose flap damping held the link")
	}
}
