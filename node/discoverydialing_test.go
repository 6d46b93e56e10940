package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/node/topology"
)

// patientDialler starts a gossip node "a" whose dials wait patience
// (no dial to a silent address ends while a test looks) and whose
// periodic policy step is an hour away.
func patientDialler(t *testing.T) *Node {
	t.Helper()
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.DialTimeout = patience
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Interval: time.Hour}
	}
	return c.add("a")
}

// A node has at most maxDialing discovery dials in flight. The policy
// lists a member as unavailable while maxDialing dials run, but it counts
// them once, at the start of its step, and then adds up to Config.Adds
// members (a repair link, a link toward the target, a shortcut): a step
// that began with 3 dials in flight started 2 more. Each made-up member
// here sits on a silent host of its own (127.0.0.20 on), so that neither
// the host budget nor a failure ends a dial: before, all 6 dials were in
// flight at once and every host got a QUIC handshake; now 4 are, and the
// others are not dialled.
func TestDialsInFlightBounded(t *testing.T) {
	const members = 6
	a := patientDialler(t)
	var sinks []*udpSink
	for i := range members {
		sinks = append(sinks, newUDPSinkAt(t, fmt.Sprintf("127.0.0.%d", 20+i)))
	}
	for i, s := range sinks {
		a.disco.dial(Member{Name: fmt.Sprintf("ghost-%d", i), LinkAddr: s.pc.LocalAddr().String()}, topology.WhyTarget)
	}
	a.disco.mu.Lock()
	inFlight := len(a.disco.dialing)
	a.disco.mu.Unlock()
	waitFor(t, "handshakes at the first hosts dialled", patience, func() bool {
		n := 0
		for _, s := range sinks {
			if _, most := s.counts(); most > 0 {
				n++
			}
		}
		return n >= min(inFlight, maxDialing)
	})
	dialled := 0
	for _, s := range sinks {
		if _, most := s.counts(); most > 0 {
			dialled++
		}
	}
	t.Logf("%d dials asked for: %d in flight, %d hosts got a handshake so far", members, inFlight, dialled)
	if inFlight > maxDialing || dialled > maxDialing {
		t.Errorf("%d dials in flight, %d silent hosts dialled: want at most %d", inFlight, dialled, maxDialing)
	}
}

// The host table holds maxHosts hosts. Full of running bans, it takes no
// new host, and no unproven address of one is dialled; once the bans end,
// the policy's step frees them and the new host is dialled.
func TestHostTableFullOfBansDialsNoNewHost(t *testing.T) {
	a := patientDialler(t)
	sink := newUDPSinkAt(t, "127.0.0.30")
	ghost := Member{Name: "ghost", LinkAddr: sink.pc.LocalAddr().String()}
	d := a.disco
	now := time.Now()
	d.mu.Lock()
	for i := range maxHosts {
		d.hosts[fmt.Sprintf("198.18.%d.%d", i/256, i%256)] = &hostBudget{fails: unprovenDials, until: now.Add(unprovenBan)}
	}
	d.mu.Unlock()
	d.dial(ghost, topology.WhyTarget)
	d.mu.Lock()
	dialling, hosts := d.dialing[ghost.Name], len(d.hosts)
	d.mu.Unlock()
	if dialling || hosts > maxHosts {
		t.Errorf("host table full of running bans: dialled a new host %v, %d hosts held (bound %d)", dialling, hosts, maxHosts)
	}
	d.mu.Lock()
	for _, h := range d.hosts {
		h.until = now
	}
	d.mu.Unlock()
	d.step(time.Now())
	d.dial(ghost, topology.WhyTarget)
	waitFor(t, "a handshake at the new host once the bans ended", patience, func() bool {
		_, most := sink.counts()
		return most > 0
	})
}

// The link counts a node aims for and keeps by default: a target of 7
// (or MaxLinks when that is set and smaller), a maximum of the larger of
// 10 and twice the target.
func TestDiscoveryLinkDefaults(t *testing.T) {
	for _, tt := range []struct{ target, max, wantTarget, wantMax int }{
		{0, 0, 7, 14},
		{0, 3, 3, 3},
		{0, 20, 7, 20},
		{3, 0, 3, 10},
		{8, 0, 8, 16},
	} {
		c := Config{Discovery: DiscoveryConfig{TargetLinks: tt.target, MaxLinks: tt.max}}
		c.setDefaults()
		if d := c.Discovery; d.TargetLinks != tt.wantTarget || d.MaxLinks != tt.wantMax {
			t.Errorf("TargetLinks %d, MaxLinks %d: defaults to %d and %d, want %d and %d",
				tt.target, tt.max, d.TargetLinks, d.MaxLinks, tt.wantTarget, tt.wantMax)
		}
	}
}
