package simulate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// A transfer over a 10 Mbit/s link takes as long as the bits take on the
// wire: about 0.84 s of virtual time per MiB, never less.
func TestShapeBandwidthTransfer(t *testing.T) {
	s, err := Parse("bandwidth.sim", `
nodes a b c
link a-b latency=5ms bandwidth=10Mbit queue=64KiB
link b-c latency=1ms
wait converged
transfer a c 1MiB
transfer a c 2MiB
`)
	if err != nil {
		t.Fatal(err)
	}
	rep := Test(t, s, Config{Backend: BackendQUIC})
	if !rep.OK() {
		return
	}
	for _, st := range rep.Steps {
		tr := st.Transfer
		if tr == nil {
			continue
		}
		wire := time.Duration(float64(tr.Bytes*8) / 10e6 * float64(time.Second))
		t.Logf("%s: %v virtual (%.2f s per MiB), the bits alone take %v", st.Step, tr.Duration,
			tr.Duration.Seconds()/(float64(tr.Bytes)/(1<<20)), wire)
		if tr.Duration < wire || tr.Duration > wire*115/100 {
			t.Errorf("%s took %v of virtual time, want between %v (the payload at 10 Mbit/s) and %v", st.Step, tr.Duration, wire, wire*115/100)
		}
	}
}

// arrival is one packet's arrival: its sequence number and the virtual
// time since the first send.
type arrival struct {
	seq int
	at  time.Duration
}

// shapedArrivals sends count numbered packets a→b over a link shaped by p
// (and, when reverse, as many b→a at the same time) inside a synctest
// bubble, and returns what b received, in arrival order.
func shapedArrivals(t *testing.T, seed uint64, p LinkParams, count int, reverse bool) []arrival {
	t.Helper()
	var got []arrival
	synctest.Test(t, func(t *testing.T) {
		n, a, b := listenPairSeed(t, seed)
		n.setParams("a", "b", p)
		start := time.Now()
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 64)
			b.SetReadDeadline(start.Add(10 * time.Second))
			for {
				k, _, err := b.ReadFrom(buf)
				if err != nil {
					if !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Errorf("read: %v", err)
					}
					return
				}
				got = append(got, arrival{int(binary.BigEndian.Uint32(buf[:k])), time.Since(start)})
			}
		}()
		pkt := make([]byte, 1200)
		for i := range count {
			binary.BigEndian.PutUint32(pkt, uint32(i))
			a.WriteTo(pkt, b.LocalAddr())
			if reverse {
				b.WriteTo(pkt, a.LocalAddr())
			}
			time.Sleep(time.Millisecond)
		}
		<-done
	})
	return got
}

// Loss, jitter, reordering and duplication are drawn per direction from
// the seed: the same seed gives the same arrivals at the same virtual
// instants, whatever the other direction carries; another seed gives
// others.
func TestShapePerDirectionStreams(t *testing.T) {
	p := LinkParams{Latency: 5 * time.Millisecond, Loss: 0.1,
		Shape: Shape{Jitter: 2 * time.Millisecond, Reorder: 0.1, Duplicate: 0.1}}
	const count = 500
	first := shapedArrivals(t, 7, p, count, false)
	again := shapedArrivals(t, 7, p, count, false)
	withReverse := shapedArrivals(t, 7, p, count, true)
	other := shapedArrivals(t, 8, p, count, false)
	// Packets due at the same virtual instant may be read in either
	// order: compare arrivals sorted by time, then number.
	key := func(as []arrival) string {
		s := slices.Clone(as)
		slices.SortFunc(s, func(x, y arrival) int {
			if x.at != y.at {
				return int(x.at - y.at)
			}
			return x.seq - y.seq
		})
		return fmt.Sprint(s)
	}
	if key(first) != key(again) {
		t.Error("the same seed gave different arrivals")
	}
	if key(first) != key(withReverse) {
		t.Error("traffic in the other direction changed this direction's arrivals")
	}
	if key(first) == key(other) {
		t.Error("another seed gave the same arrivals")
	}

	seen := map[int]int{}
	reordered, minDelay, maxDelay := 0, time.Hour, time.Duration(0)
	highest := -1
	for _, a := range first {
		seen[a.seq]++
		if a.seq < highest {
			reordered++
		}
		highest = max(highest, a.seq)
		d := a.at - time.Duration(a.seq)*time.Millisecond
		minDelay, maxDelay = min(minDelay, d), max(maxDelay, d)
	}
	dups, lost := 0, count-len(seen)
	for _, k := range seen {
		if k > 1 {
			dups++
		}
	}
	t.Logf("%d arrivals of %d packets: %d lost, %d duplicated, %d overtaken, one-way delay %v to %v",
		len(first), count, lost, dups, reordered, minDelay, maxDelay)
	// 10 % each of 500: expect about 50, allow a wide band.
	for what, n := range map[string]int{"lost": lost, "duplicated": dups, "overtaken": reordered} {
		if n < 20 || n > 100 {
			t.Errorf("%d of %d packets %s, want about 10%%", n, count, what)
		}
	}
	if minDelay < 3*time.Millisecond || maxDelay > 5*time.Millisecond+2*time.Millisecond+5*time.Millisecond {
		t.Errorf("one-way delay from %v to %v, want 3ms (5ms - 2ms jitter) up to 12ms (held back for reordering)", minDelay, maxDelay)
	}
	if maxDelay-minDelay < 3*time.Millisecond {
		t.Errorf("one-way delay varies by only %v with 2ms of jitter", maxDelay-minDelay)
	}
}

// A bandwidth limit queues packets behind each other and drops those
// that do not fit in the queue.
func TestShapeBandwidthQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, a, b := listenPair(t)
		// 1 Mbit/s: a 1250-byte packet takes 10 ms on the wire; the queue
		// holds 4 of them (the one being sent counts while it waits).
		n.setParams("a", "b", LinkParams{Shape: Shape{Bandwidth: 1_000_000, Queue: 5000}})
		start := time.Now()
		pkt := make([]byte, 1250)
		for range 10 {
			a.WriteTo(pkt, b.LocalAddr())
		}
		var at []time.Duration
		b.SetReadDeadline(start.Add(time.Second))
		for {
			if _, _, err := b.ReadFrom(pkt); err != nil {
				break
			}
			at = append(at, time.Since(start))
		}
		want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond, 40 * time.Millisecond}
		if !slices.Equal(at, want) {
			t.Errorf("a burst of 10 packets of 1250 bytes over 1 Mbit/s with a 5000-byte queue arrived at %v, want %v (the rest dropped)", at, want)
		}
	})
}

func TestParseShapeOptions(t *testing.T) {
	s, err := Parse("shape.sim", `
nodes a b c
link a-b latency=5ms bandwidth=10Mbit queue=64KiB jitter=1ms reorder=0.01 dup=0.02
link b-c bandwidth=512kbit
set a-b bandwidth=1Gbit dup=0
`)
	if err != nil {
		t.Fatal(err)
	}
	got := s.Steps[1].Params
	want := LinkParams{Latency: 5 * time.Millisecond, Shape: Shape{Bandwidth: 10_000_000, Queue: 64 << 10,
		Jitter: time.Millisecond, Reorder: 0.01, Duplicate: 0.02}}
	if got != want {
		t.Errorf("link options parsed as %+v, want %+v", got, want)
	}
	if bw := s.Steps[2].Params.Bandwidth; bw != 512_000 {
		t.Errorf("512kbit parsed as %d bit/s", bw)
	}
	p := want
	setShape(&p, s.Steps[3])
	want.Bandwidth, want.Duplicate = 1e9, 0
	if p != want {
		t.Errorf("set changed the link to %+v, want %+v (only bandwidth and dup)", p, want)
	}
	for _, bad := range []string{
		"link a-b bandwidth=10",
		"link a-b bandwidth=10Mbps",
		"link a-b queue=1GiB",
		"link a-b jitter=-1ms",
		"link a-b reorder=2",
		"link a-b dup=x",
		"transfer a b 1MiB bandwidth=1Mbit",
		"link a-b queue=64KiB",
		"random edges=1 queue=64KiB latency=1ms",
	} {
		_, err := Parse("bad.sim", "nodes a b\n"+bad)
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != 2 {
			t.Errorf("%q: %v, want an error on line 2", bad, err)
		} else if !strings.Contains(err.Error(), "bad.sim:2:") {
			t.Errorf("%q: %v does not name the line", bad, err)
		}
	}
}

// A queue without a bandwidth would hold no packet: Link and SetLink
// refuse it, and so does a set step that leaves a link with one.
func TestQueueWithoutBandwidthIsRefused(t *testing.T) {
	c := newTestCluster(t, "a", "b")
	if err := c.Link(ctxT(t, patience), "a", "b", LinkParams{Shape: Shape{Queue: 5000}}); err == nil || !strings.Contains(err.Error(), "without a bandwidth") {
		t.Errorf("Link with a queue and no bandwidth: %v, want an error saying it needs a bandwidth", err)
	}
	rep := runScript(t, "queue.sim", "nodes a b\nlink a-b bandwidth=1Mbit\nset a-b queue=8KiB\nlink a-b\nset a-b queue=8KiB\n", BackendQUIC)
	if rep.Steps[2].Status != "ok" || rep.Steps[4].Status != "fail" || !strings.Contains(rep.Steps[4].Error, "without a bandwidth") {
		t.Errorf("set queue= on a link with a bandwidth: %+v; on one without: %+v; want ok, then a failure saying it needs a bandwidth", rep.Steps[2], rep.Steps[4])
	}
}
