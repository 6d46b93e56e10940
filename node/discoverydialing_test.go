package node

import (
	"context"
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

// lockedTables is a discovery with empty tables, its lock held until
// the test ends.
func lockedTables(t *testing.T) *discovery {
	d := &discovery{backoff: map[string]*addrBackoff{}, proven: map[string]string{}, unproven: map[string]*addrBackoff{},
		hosts: map[string]*hostBudget{}, members: map[string]gossipMember{}}
	d.mu.Lock()
	t.Cleanup(d.mu.Unlock)
	return d
}

// tableMember is the i-th of up to 65,536 members, each at an address of
// its own.
func tableMember(i int) Member {
	return Member{Name: fmt.Sprintf("m%d", i), LinkAddr: fmt.Sprintf("198.18.%d.%d:9", i/256, i%256)}
}

// failTwice has unprovenDials dials of m fail at now, its address silent.
func failTwice(d *discovery, m Member, now time.Time) {
	for range unprovenDials {
		d.dialFailedLocked(m, context.DeadlineExceeded, now)
	}
}

// The back-off tables hold at most 4,096 entries each: the link
// addresses that failed a dial and the members that failed dials at
// addresses that never proved them. Full of running bans (4,096 made-up
// members at silent addresses, each failed twice), they take no new
// entry: a new address is not dialled and its failed dial leaves the
// tables as they are. Once the bans end, a new address evicts an ended
// entry and is dialled, and the tables still hold 4,096.
func TestBackoffTablesBounded(t *testing.T) {
	const bound = 4096
	d, now := lockedTables(t), time.Now()
	for i := range bound + 100 {
		failTwice(d, tableMember(i), now)
	}
	if len(d.backoff) != bound || len(d.unproven) != bound {
		t.Fatalf("%d made-up members failed: %d addresses and %d members backed off, want %d each", bound+100, len(d.backoff), len(d.unproven), bound)
	}
	m := tableMember(bound + 100)
	if d.mayDialLocked(m.Name, m.LinkAddr, now) {
		t.Error("a new address is dialled while the back-off table is full of running bans")
	}
	if _, ok := d.unproven[tableMember(bound+99).Name]; ok {
		t.Error("a member beyond the bound was recorded while the table was full of running bans")
	}
	later := now.Add(unprovenBan + time.Minute)
	if !d.mayDialLocked(m.Name, m.LinkAddr, later) {
		t.Fatal("a new address is not dialled once the bans ended")
	}
	failTwice(d, m, later)
	if !d.memberBannedLocked(m.Name, m.LinkAddr, later) {
		t.Error("a new member's failed dials were not counted once the bans ended")
	}
	if len(d.backoff) > bound || len(d.unproven) > bound {
		t.Errorf("%d addresses and %d members backed off, want at most %d each", len(d.backoff), len(d.unproven), bound)
	}
}

// The addresses where a handshake proved a member are remembered, 4,096
// at most: a new one takes the place of one of them, and the address
// forgotten is treated as unproven: two failed dials there ban its
// member for the hour, where an address still remembered is backed off
// a few seconds and its member stays dialled.
func TestProvenAddressesBounded(t *testing.T) {
	const bound = 4096
	d, now := lockedTables(t), time.Now()
	node := tableMember
	for i := range bound + 1 {
		d.proveLocked(node(i).LinkAddr, node(i).Name, now)
	}
	if len(d.proven) != bound || d.proven[node(bound).LinkAddr] != node(bound).Name {
		t.Fatalf("%d addresses proven: %d remembered (the last %v), want %d with the last", bound+1, len(d.proven), d.proven[node(bound).LinkAddr] != "", bound)
	}
	forgotten, kept := -1, -1
	for i := range bound {
		if _, ok := d.proven[node(i).LinkAddr]; !ok {
			forgotten = i
		} else if kept < 0 {
			kept = i
		}
	}
	failTwice(d, node(forgotten), now)
	failTwice(d, node(kept), now)
	f, k := node(forgotten), node(kept)
	if !d.memberBannedLocked(f.Name, f.LinkAddr, now.Add(unprovenBan-time.Minute)) {
		t.Errorf("%s, its address forgotten, is dialled within the hour after %d failed dials there", f.Name, unprovenDials)
	}
	if d.memberBannedLocked(k.Name, k.LinkAddr, now) || !d.mayDialLocked(k.Name, k.LinkAddr, now.Add(4*dialMinBackoff)) {
		t.Errorf("%s, its address remembered, is barred after %d failed dials there", k.Name, unprovenDials)
	}
}
