package node

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
)

// Attacks on the routing protocol by a neighbour with a valid
// certificate: messages that are well-formed and cheap to send but cost
// the receiver, or the whole mesh, far more.

func routerStats(n *Node) routing.Stats {
	n.router.mu.Lock()
	defer n.router.mu.Unlock()
	return n.router.eng.Stats()
}

// summaryFlood is a routing message (wire version 3) of 13 summary
// entries, one for each bucket count 1, 2, 4, ..., 4096, none matching:
// 211 bytes.
func summaryFlood() []byte {
	b := []byte{3, 0, 13}
	for buckets := uint16(1); buckets <= 4096; buckets *= 2 {
		b = append(b, 4, 0) // kind summary, no name
		b = binary.BigEndian.AppendUint16(b, buckets)
		b = binary.BigEndian.AppendUint16(b, 0)      // bucket
		b = binary.BigEndian.AppendUint16(b, 7)      // count
		b = binary.BigEndian.AppendUint64(b, 0xdead) // digest
	}
	return b
}

// TestSummaryFloodFromNeighbourIsCheap: m, a neighbour of d, sends d
// routing messages of 211 bytes as fast as its link takes them, each with
// a summary entry for every bucket count. Each used to cost d a walk of
// its table and arrays for 8,191 buckets (about 114 KiB of allocation,
// 550 times the bytes received). Now a neighbour's summaries are one set
// per half update interval, of one bucket count: the rest are refused
// and counted, and d's allocation per message is what any routing message
// costs the link (about 2.7 times its bytes without the race detector).
func TestSummaryFloodFromNeighbourIsCheap(t *testing.T) {
	c := newCluster(t, true)
	c.build("m-d", "h-d")
	d, h := c.nodes["d"], c.nodes["h"]
	l := c.mustLink("m", "d")
	msg := summaryFlood()
	before := routerStats(d)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	t0 := time.Now()
	sent := 0
	for time.Since(t0) < 2*time.Second {
		if err := l.SendRouting(msg); err != nil {
			time.Sleep(50 * time.Microsecond)
			continue
		}
		sent++
	}
	time.Sleep(200 * time.Millisecond)
	runtime.ReadMemStats(&ms1)
	after := routerStats(d)
	in := after.MessagesIn - before.MessagesIn
	refused := after.RefusedSummaries - before.RefusedSummaries
	// What the link carried: the messages the engine took and those it
	// refused unread over m's receive budget.
	received := in + after.OverBudget - before.OverBudget
	perMsg := float64(ms1.TotalAlloc-ms0.TotalAlloc) / float64(max(received, 1))
	t.Logf("m sent %d messages of %d bytes; d received %d, took %d and refused %d summary entries; the process allocated %.0f bytes per message received (%.1fx)",
		sent, len(msg), received, in, refused, perMsg, perMsg/float64(len(msg)))
	if in < 100 {
		t.Fatalf("d took only %d of m's messages: the flood did not reach the engine", in)
	}
	if refused < 12*in {
		t.Errorf("d refused %d summary entries of %d messages of 13: summaries of other bucket counts, and sets beyond one per interval, were taken", refused, in)
	}
	// Under the race detector sync.Pool drops items at random, so QUIC's
	// buffers are allocated anew far more often: the bound is looser.
	bound := 16.0
	if raceEnabled {
		bound = 64
	}
	if perMsg > bound*float64(len(msg)) {
		t.Errorf("each %d-byte summary message from one neighbour cost d %.0f bytes of allocation (%.0fx)", len(msg), perMsg, perMsg/float64(len(msg)))
	}
	// d still routes: h reaches m through it.
	if err := roundTrip(t, h, "m", EchoService, []byte("still routed")); err != nil {
		t.Fatalf("h to m through d after the flood: %v", err)
	}
}

// seqnoRequest is a routing message with one seqno request for origin.
func seqnoRequest(origin string, seqno uint16) []byte {
	return seqnoRequestHops(origin, seqno, 127)
}

// seqnoRequestHops is seqnoRequest with hop count hops.
func seqnoRequestHops(origin string, seqno uint16, hops byte) []byte {
	b := []byte{3, 0, 1, 2, byte(len(origin))}
	b = append(b, origin...)
	b = binary.BigEndian.AppendUint16(b, seqno)
	return append(b, hops)
}

func routeSeqno(n *Node, dest string) uint16 {
	n.router.mu.Lock()
	defer n.router.mu.Unlock()
	r, _ := n.router.eng.Lookup(dest)
	return r.Seqno
}

// TestSeqnoRequestsCannotDriveAnOrigin: m, a neighbour of d, asks through
// d for ever newer seqnos of x, an honest origin two hops away. Each raise
// costs x a signature and every node a verification; x raised its seqno
// on every request d forwarded (about 17 a second), to whatever was
// asked, so one request could move it half the 16-bit circle. Now x
// raises at most once a second whatever asks, and by at most 4096.
func TestSeqnoRequestsCannotDriveAnOrigin(t *testing.T) {
	t.Parallel()
	c := newCluster(t, true)
	c.build("m-d", "d-x")
	c.waitRoute("m", "x", 2)
	m, x := c.nodes["m"], c.nodes["x"]
	l := m.link("d")
	time.Sleep(300 * time.Millisecond)
	b0 := routerStats(x).SeqnoBumps
	start := time.Now()
	for time.Since(start) < 3*time.Second {
		_ = l.SendRouting(seqnoRequest("x", routeSeqno(m, "x")+1))
		time.Sleep(10 * time.Millisecond)
	}
	el := time.Since(start)
	bumps := routerStats(x).SeqnoBumps - b0
	t.Logf("in %v of requests x raised its seqno %d times", el.Round(time.Millisecond), bumps)
	if limit := uint64(el/time.Second) + 2; bumps > limit {
		t.Errorf("m's requests made x raise, sign and have verified %d seqnos in %v (want at most %d: one a second)", bumps, el.Round(time.Millisecond), limit)
	}
	if bumps == 0 {
		t.Errorf("x never raised its seqno on request: requests are not answered")
	}
	// One request far ahead moves x by 4096 at most.
	time.Sleep(1100 * time.Millisecond)
	cur := routeSeqno(x, "x")
	_ = l.SendRouting(seqnoRequest("x", cur+32767))
	waitFor(t, "x to answer the request", 10*time.Second, func() bool { return routeSeqno(x, "x") != cur })
	if now := routeSeqno(x, "x"); now-cur > 4096 {
		t.Errorf("one request for seqno+32767 moved x's seqno from %d to %d", cur, now)
	}
}
