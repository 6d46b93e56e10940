package node

import (
	"slices"
	"strconv"
	"testing"
	"time"
)

// fillMembers fills d's member table to its bound with made-up names, as
// a stranger's push-pulls of made-up members do when gossip has no key
// (the default): 16 push-pulls of 4,096 states, docs/SECURITY.md. It
// returns a function that removes them.
func fillMembers(d *discovery) (unfill func()) {
	d.mu.Lock()
	var filler []string
	for i := 0; len(d.members) < maxMembers; i++ {
		name := "ghost-" + strconv.Itoa(i)
		if _, ok := d.members[name]; !ok {
			d.members[name] = gossipMember{}
			filler = append(filler, name)
		}
	}
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		for _, name := range filler {
			delete(d.members, name)
		}
		d.mu.Unlock()
	}
}

func lists(n *Node, name string) bool {
	return slices.ContainsFunc(n.Members(), func(m Member) bool { return m.Name == name })
}

// A member table full of names nobody certified still takes honest nodes
// with a valid certificate. b joins through a, whose table is full: a
// does not know b's certificate yet, so b's alive message waits; once b
// links into the mesh and routing brings its certificate, a lists b.
// Before, a full table refused every new name, honest ones included, and
// made-up members leave it only as memberlist probes them dead, about one
// a second.
func TestFullMemberTableTakesCertifiedNodes(t *testing.T) {
	c := newCluster(t, true)
	var seed string
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", TargetLinks: 2, MaxLinks: 4, Interval: 500 * time.Millisecond}
		if seed != "" {
			cfg.Discovery.Join = []string{seed}
		}
	}
	a := c.add("a")
	seed = a.Status().GossipAddr
	defer fillMembers(a.disco)()

	b := c.add("b")
	waitFor(t, "a to list b, an honest node that joined through a with a's member table full", 2*time.Minute, func() bool { return lists(a, "b") })
	if _, ok := b.Peer("a"); !ok {
		t.Errorf("a lists b, but b has no route to a")
	}

}
