package memlink

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// Payloads sent at the same instant by several goroutines reach a node in
// an order fixed by the senders' names, not by which goroutine ran first.
func TestOrderedDeliveryIgnoresSenderScheduling(t *testing.T) {
	for run := range 5 {
		synctest.Test(t, func(t *testing.T) {
			n := NewNetwork(Config{Settle: synctest.Wait})
			nodes := newNodes(t, n, "x", "a", "b", "c", "d")
			var ends []links.Link
			for _, nd := range nodes[1:] {
				ends = append(ends, dial(t, nd.t, "x"))
			}
			time.Sleep(time.Millisecond) // the links are up (synctest.Wait is the network's)
			var wg sync.WaitGroup
			for i := len(ends) - 1; i >= 0; i-- { // the last name starts first
				wg.Go(func() {
					time.Sleep(time.Millisecond) // all wake at the same instant
					for k := range 3 {
						if err := ends[i].SendRouting(fmt.Appendf(nil, "%d", k)); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			time.Sleep(time.Millisecond)
			var want []string
			for _, p := range []string{"a", "b", "c", "d"} {
				want = append(want, "up "+p)
			}
			for _, p := range []string{"a", "b", "c", "d"} {
				for k := range 3 {
					want = append(want, fmt.Sprintf("routing %s %d", p, k))
				}
			}
			if got := nodes[0].rec.snapshot(); !slices.Equal(got, want) {
				t.Fatalf("run %d: x saw %q, want %q", run+1, got, want)
			}
		})
	}
}

// arrivals records when each routing payload arrived, since start.
type arrivals struct {
	nopHandler
	start time.Time
	mu    sync.Mutex
	got   []string
}

func (a *arrivals) Routing(_ links.Link, p []byte) {
	a.mu.Lock()
	a.got = append(a.got, fmt.Sprintf("%s@%v", p, time.Since(a.start)))
	a.mu.Unlock()
}

// deliveries sends 20 payloads from a to b over a path of 5 ms that loses
// half its packets, and returns what b saw.
func deliveries(t *testing.T, seed uint64) []string {
	var got []string
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork(Config{Settle: synctest.Wait, Seed: seed})
		n.SetPath("a", "b", 5*time.Millisecond, 0.5)
		rec := &arrivals{start: time.Now()}
		ta, err := n.Transport(TransportConfig{Name: "a", Mesh: "m"})
		if err != nil {
			t.Fatal(err)
		}
		tb, err := n.Transport(TransportConfig{Name: "b", Mesh: "m", Handler: rec})
		if err != nil {
			t.Fatal(err)
		}
		l := dial(t, ta, "b")
		for k := range 20 {
			if err := l.SendRouting(fmt.Appendf(nil, "%d", k)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second)
		ta.Close()
		tb.Close()
		got = rec.got
	})
	return got
}

// On an ordered network a path's delay and loss hold back routing
// payloads but lose none, keep them in order, and depend on the seed
// alone.
func TestOrderedPathDelayAndLoss(t *testing.T) {
	first := deliveries(t, 1)
	if len(first) != 20 {
		t.Fatalf("%d of 20 payloads arrived: %q", len(first), first)
	}
	var prev time.Duration
	late := 0
	for k, s := range first {
		num, after, _ := strings.Cut(s, "@")
		at, err := time.ParseDuration(after)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if num != strconv.Itoa(k) || at < 5*time.Millisecond || at < prev {
			t.Fatalf("payload %d: %q; all: %q", k, s, first)
		}
		if at > 5*time.Millisecond {
			late++
		}
		prev = at
	}
	if late == 0 {
		t.Fatalf("no payload was held back by loss: %q", first)
	}
	if again := deliveries(t, 1); !slices.Equal(again, first) {
		t.Fatalf("same seed, different arrivals:\n%q\n%q", first, again)
	}
	if other := deliveries(t, 2); slices.Equal(other, first) {
		t.Fatalf("seeds 1 and 2 gave the same arrivals: %q", first)
	}
}

// Routing payloads still in flight when a link goes down are lost with it.
func TestOrderedDownDropsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork(Config{Settle: synctest.Wait})
		n.SetPath("a", "b", 10*time.Millisecond, 0)
		nodes := newNodes(t, n, "a", "b")
		l := dial(t, nodes[0].t, "b")
		lb := peerEnd(t, nodes[1].t, "a")
		if err := l.SendRouting([]byte("to b")); err != nil {
			t.Fatal(err)
		}
		if err := lb.SendRouting([]byte("to a")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		n.Kill("b")
		time.Sleep(20 * time.Millisecond)
		if got, want := nodes[0].rec.snapshot(), []string{"up b", "down b"}; !slices.Equal(got, want) {
			t.Errorf("a saw %q, want %q", got, want)
		}
		if got, want := nodes[1].rec.snapshot(), []string{"up a", "down a"}; !slices.Equal(got, want) {
			t.Errorf("b saw %q, want %q", got, want)
		}
	})
}

// Quiesce on an ordered network returns only once the goroutines still
// running when it was called have run their course and the calls they
// made due at once were delivered; calls due later stay pending, and the
// virtual clock does not move.
func TestQuiesceWaitsForRunningGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork(Config{Settle: synctest.Wait})
		n.SetPath("a", "b", 10*time.Millisecond, 0)
		nodes := newNodes(t, n, "a", "b")
		l := dial(t, nodes[0].t, "b")
		time.Sleep(time.Millisecond) // the link is up (synctest.Wait is the network's)
		var done atomic.Bool
		go func() {
			for range 20000 { // busy, never blocked: only Quiesce can wait for it
				runtime.Gosched()
			}
			n.SetCost("a", "b", 70)                               // due at once
			if err := l.SendRouting([]byte("late")); err != nil { // due in 10 ms
				t.Error(err)
			}
			done.Store(true)
		}()
		start := time.Now()
		n.Quiesce()
		if !done.Load() {
			t.Fatal("Quiesce returned while a goroutine of the bubble still ran")
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("the clock moved %v during Quiesce", d)
		}
		if got, want := nodes[1].rec.snapshot(), []string{"up a", "cost a 70"}; !slices.Equal(got, want) {
			t.Errorf("after Quiesce b saw %q, want %q (the cost change due at once, the payload due later not yet)", got, want)
		}
		time.Sleep(20 * time.Millisecond)
		if got, want := nodes[1].rec.snapshot(), []string{"up a", "cost a 70", "routing a late"}; !slices.Equal(got, want) {
			t.Errorf("later b saw %q, want %q", got, want)
		}
		n.Quiesce() // the delivery goroutine has stopped: Quiesce starts it
	})
}
