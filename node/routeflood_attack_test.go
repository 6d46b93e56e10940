package node

import (
	"context"
	"encoding/binary"
	"io"
	"sync"
	"testing"
	"time"
)

// routingFloodMix is what a neighbour floods with: messages an honest
// engine never sends, or never sends at this rate, each cheap to send.
func routingFloodMix(self string, seqno uint16) [][]byte {
	redundant := []byte{3, 0, 1, 1, byte(len(self))} // an update of its own route, as d holds it
	redundant = append(redundant, self...)
	redundant = binary.BigEndian.AppendUint16(redundant, seqno)
	redundant = binary.BigEndian.AppendUint32(redundant, 0) // metric
	redundant = binary.BigEndian.AppendUint16(redundant, 0) // hops
	return [][]byte{
		{3, 0, 0},                     // empty: a header and no entry
		{3, 0, 1, 5, 0, 0, 1, 0, 0},   // one resend request, never preceded by a summary
		{3, 0, 1, 2, 1, 'q', 0, 0, 1}, // one seqno request for an unknown origin
		{3, 0, 2, 1},                  // malformed: two entries announced, none there
		{9, 0, 0},                     // malformed: another wire version
		redundant,
	}
}

// TestAttackRoutingFrameFlood: m, a neighbour of d with a valid
// certificate, sends d routing messages of 3 to 14 bytes as fast as its
// link takes them: empty, malformed, lone requests nobody asked for, and
// its own route as d already holds it. Each used to be one pass of d's
// router (its lock, a decode, the engine's outputs and next deadline):
// many times the CPU per byte of circuit data. d's engine now takes at
// most a budget of each neighbour's messages (routing.Stats.OverBudget:
// four times what the engine's own send rules let a neighbour send) and
// refuses the rest before decoding them; meanwhile h, an honest
// neighbour, still gets its new route through to d.
func TestAttackRoutingFrameFlood(t *testing.T) {
	c := newCluster(t, true)
	dlog := c.captureLog("d")
	c.build("m-d", "h-d")
	c.waitRoute("m", "h", 2)
	m, d := c.nodes["m"], c.nodes["d"]
	l := c.mustLink("m", "d")
	mix := routingFloodMix("m", routeSeqno(d, "m"))

	before := routerStats(d)
	cpu0 := processCPU()
	t0 := time.Now()
	stop := make(chan struct{})
	var (
		wg          sync.WaitGroup
		sent, bytes int
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			msg := mix[i%len(mix)]
			if err := l.SendRouting(msg); err != nil {
				time.Sleep(50 * time.Microsecond)
				continue
			}
			sent++
			bytes += len(msg)
		}
	}()
	// While the flood runs, h links to x: d must learn the route.
	time.Sleep(500 * time.Millisecond)
	linked := time.Now()
	c.build("h-x")
	c.waitRoute("d", "x", 2)
	learnt := time.Since(linked)
	if rest := 2*time.Second - time.Since(t0); rest > 0 {
		time.Sleep(rest)
	}
	close(stop)
	wg.Wait()
	el := time.Since(t0)
	// What the link still holds: on a starved machine d reads its
	// control stream well behind m's sends, and a message still on its
	// way is neither decoded nor refused. Every message m sent reaches
	// d (the control stream is reliable) and is counted as one or the
	// other; h's and m's engines add a few of their own.
	waitFor(t, "d to take every routing message m sent", patience, func() bool {
		s := routerStats(d)
		return s.MessagesIn-before.MessagesIn+s.Malformed-before.Malformed+s.OverBudget-before.OverBudget >= uint64(sent)
	})
	cpu := processCPU() - cpu0
	after := routerStats(d)
	counted := time.Since(t0) // the budget grows until the stats are read
	decoded := after.MessagesIn - before.MessagesIn + after.Malformed - before.Malformed
	refused := after.OverBudget - before.OverBudget

	data := circuitDataCPU(t, m, d, bytes)
	t.Logf("m sent %d routing messages (%d bytes) in %v; d decoded %d and refused %d unread; d learnt h's new route in %v; the process spent %v of CPU (%.0f ns per byte), the same bytes of circuit data %v (%.0f ns per byte)",
		sent, bytes, el.Round(time.Millisecond), decoded, refused, learnt.Round(time.Millisecond),
		cpu.Round(time.Millisecond), float64(cpu)/float64(max(bytes, 1)), data.Round(time.Millisecond), float64(data)/float64(max(bytes, 1)))

	// The budget: 256 messages per 50 ms after a burst of 2048, and the
	// messages h and m's engine sent meanwhile.
	limit := uint64(counted/(50*time.Millisecond)+1)*256 + 2048 + 500
	if decoded > limit {
		t.Errorf("d decoded %d routing messages in %v, nearly all of them m's flood (want at most %d: a neighbour's budget)", decoded, counted.Round(time.Millisecond), limit)
	}
	if sent > int(limit)+2000 && refused == 0 {
		t.Errorf("m sent %d messages in %v and d refused none of them", sent, el.Round(time.Millisecond))
	}
	// An operator sees the refusals: counted, and named in one line a
	// minute, not one a message.
	if got := metricValue(t, d, "circuitmesh_routing_refused_total", "reason", "over_budget"); got < float64(refused) {
		t.Errorf("circuitmesh_routing_refused_total{reason=\"over_budget\"} = %v, want at least the %d refused", got, refused)
	}
	if refused > 0 {
		wantOneLogLine(t, "d", dlog.String(), "routing messages refused: neighbour over", int(refused), "routing messages refused over m's budget", "")
	}
	if err := l.Err(); err != nil {
		t.Fatalf("m's link to d ended: %v", err)
	}
	// d still routes: h reaches m through it.
	if err := roundTrip(t, c.nodes["h"], "m", EchoService, []byte("still routed")); err != nil {
		t.Fatalf("h to m through d after the flood: %v", err)
	}
}

// circuitDataCPU is the process CPU time taken to carry n bytes over a
// circuit from a to its neighbour b, for comparison.
func circuitDataCPU(t *testing.T, a, b *Node, n int) time.Duration {
	t.Helper()
	ln, err := b.Listen("sink")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- 0
			return
		}
		defer c.Close()
		k, _ := io.Copy(io.Discard, c)
		got <- k
	}()
	conn, err := a.Dial(ctxT(t, patience), b.Name(), "sink")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16<<10)
	cpu0 := processCPU()
	for w := 0; w < n; w += len(buf) {
		if _, err := conn.Write(buf[:min(len(buf), n-w)]); err != nil {
			t.Fatal(err)
		}
	}
	conn.CloseWrite()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	select {
	case k := <-got:
		if k != int64(n) {
			t.Fatalf("the sink got %d of %d bytes", k, n)
		}
	case <-ctx.Done():
		t.Fatal("circuit data not received")
	}
	cpu := processCPU() - cpu0
	conn.Close()
	return cpu
}
