package node

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// lateGossip is memberlist's transport on a free port of 127.0.0.1 whose
// streams, once dialled, send nothing for late: a member on a starved
// machine, whose memberlist is descheduled between its dial and its first
// write (it encodes, compresses and encrypts its whole state before it
// writes a byte).
type lateGossip struct {
	*memberlist.NetTransport
	bind string
	late time.Duration
}

func (g *lateGossip) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return g.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (g *lateGossip) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := g.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return &lateConn{Conn: c, late: g.late}, nil
}

// lateConn holds its first write for late.
type lateConn struct {
	net.Conn
	late time.Duration
	once sync.Once
}

func (c *lateConn) Write(p []byte) (int, error) {
	c.once.Do(func() { time.Sleep(c.late) })
	return c.Conn.Write(p)
}

// TestGossipSlowJoinsOfOneHost: eight members on the seed's host (one
// source prefix, as in a cluster on one machine or behind one NAT) join
// through the seed at once, their memberlist writing its push-pull
// gossipFirstBytes + 1 s after its dial, as on a starved machine. The
// seed's other slots are free: every join must succeed, at its first
// try. Before, the seed took 4 of them (the prefix's share) and closed
// the others at accept, then closed those 4 when their first bytes had not
// come within gossipFirstBytes: none joined.
func TestGossipSlowJoinsOfOneHost(t *testing.T) {
	const joiners = 2 * gossipStreamShare
	c := newCluster(t, false)
	var tr *lateGossip
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), JoinInterval: time.Hour}
		if tr != nil {
			cfg.Discovery.BindAddr, cfg.Discovery.Transport = tr.bind, tr
		}
	}
	seed := c.add("seed")
	var nodes []*Node
	for i := range joiners {
		nt, bind := loopbackGossip(t)
		tr = &lateGossip{NetTransport: nt, bind: bind, late: gossipFirstBytes + time.Second}
		nodes = append(nodes, c.add(fmt.Sprintf("j%d", i)))
	}
	errs := make([]error, joiners)
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { _, errs[i] = n.disco.ml.Join([]string{seed.Status().GossipAddr}) })
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			t.Logf("%s's join failed: %s", nodes[i].Name(), strings.Join(strings.Fields(err.Error()), " "))
		}
	}
	m := seed.disco.guard.metric
	t.Logf("%d joins at once from one host, each stream's first bytes %v late: %d failed; the seed refused %v at accept (share), %v slow, %v busy; it lists %d members",
		joiners, gossipFirstBytes+time.Second, failed, counterValue(m.WithLabelValues("stream", refuseShare)),
		counterValue(m.WithLabelValues("stream", refuseSlow)), counterValue(m.WithLabelValues("stream", refuseBusy)), seed.disco.ml.NumMembers())
	if failed > 0 {
		t.Errorf("%d of %d slow joins from one host failed while the seed had %d stream slots", failed, joiners, gossipStreams)
	}
}
