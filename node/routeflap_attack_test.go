package node

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
)

// countingHandler counts the log records whose message is one of msgs.
type countingHandler struct {
	msgs []string
	n    *atomic.Int64
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	for _, m := range h.msgs {
		if r.Message == m {
			h.n.Add(1)
		}
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// reachWatch counts the PeerUp and PeerDown events about one peer and
// keeps the last.
type reachWatch struct {
	n    atomic.Int64
	last atomic.Int64 // EventKind
}

// watchReach follows ch's events about peer until stop is closed.
func watchReach(ch <-chan Event, peer string, stop <-chan struct{}) *reachWatch {
	w := &reachWatch{}
	go func() {
		for {
			select {
			case ev, ok := <-ch:
				if !ok {
					return
				}
				if ev.Peer == peer && (ev.Kind == PeerUp || ev.Kind == PeerDown) {
					w.n.Add(1)
					w.last.Store(int64(ev.Kind))
				}
			case <-stop:
				return
			}
		}
	}()
	return w
}

// TestAttackRouteFlapStorm: a router m that is the only path from v to
// x flaps its route to x:
// it announces x (under x's own attestation, replayed) at a metric one
// lower each time, and retracts it in between, many times in one
// routing message. Each announcement is feasible (lower than any
// distance before) and each retraction is a retraction, so without
// damping v reports x up and down once per flap to its subscribers and
// its log, and passes the flaps on to its other neighbours, whose
// subscribers see them too. x is up the whole time: none of these
// events is true of anything but m's say-so. Before the reports were
// bounded per peer, 400 flaps (about 200 KB) made v publish and log 800
// in 14 ms; now at most reachBurst at once, then reachRate a second, and
// subscribers end up told that x is up.
func TestAttackRouteFlapStorm(t *testing.T) {
	c := newCluster(t, true)
	var vLines atomic.Int64
	c.tweak = func(cfg *Config) {
		if cfg.Name == "v" {
			cfg.Logger = slog.New(countingHandler{msgs: []string{PeerUp.String(), PeerDown.String()}, n: &vLines})
		}
	}
	c.build("v-w")
	c.add("x")
	c.waitRoute("w", "v", 1)
	v, w, x := c.nodes["v"], c.nodes["w"], c.nodes["x"]
	m := newAttacker(t, c, "m", v)
	if _, err := m.tr.Dial(ctxT(t, 10*time.Second), x.Addr().String()); err != nil {
		t.Fatal(err)
	}
	c.waitRoute("v", "m", 1)
	deadline := time.Now().Add(patience)
	att, ok := m.heard("x")
	for ; !ok; att, ok = m.heard("x") {
		if time.Now().After(deadline) {
			t.Fatal("m never heard x's attestation")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// m announces x honestly once (it does link x): v and w reach x.
	const top = 1 << 22
	m.send(v, encodeRouting(routingWire, []wireEntry{att, {kind: 1, origin: "x", seqno: att.seqno, metric: top, hops: 1}}))
	c.waitRoute("w", "x", 3)

	stop := make(chan struct{})
	defer close(stop)
	vch, vcancel, err := v.Subscribe(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer vcancel()
	wch, wcancel, err := w.Subscribe(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer wcancel()
	vEv, wEv := watchReach(vch, "x", stop), watchReach(wch, "x", stop)
	lines0 := vLines.Load()
	wIn0 := w.RoutingStats().MessagesIn

	// 400 flaps, a message each way.
	const flaps = 400
	metric := uint32(top)
	var payloads [][]byte
	for range flaps {
		metric--
		payloads = append(payloads,
			encodeRouting(routingWire, []wireEntry{{kind: 1, origin: "x", seqno: att.seqno, metric: uint32(routing.DefaultInfinity), hops: 1}}),
			encodeRouting(routingWire, []wireEntry{att, {kind: 1, origin: "x", seqno: att.seqno, metric: metric, hops: 1}}))
	}
	bytes := 0
	for _, p := range payloads {
		bytes += len(p)
	}
	start := time.Now()
	m.send(v, payloads...)
	sent := time.Since(start)
	time.Sleep(time.Second) // let v's updates reach w
	vEvents, wEvents, lines := vEv.n.Load(), wEv.n.Load(), vLines.Load()-lines0
	wIn := w.RoutingStats().MessagesIn - wIn0
	elapsed := time.Since(start) // the rate's allowance runs until the counts were read
	t.Logf("%d flaps in %d bytes from m, processed by v in %v: v published %d peer-up/down events about x and logged %d such lines; w got %d routing messages from v and published %d events about x",
		flaps, bytes, sent.Round(time.Millisecond), vEvents, lines, wIn, wEvents)
	if p, _ := v.Peer("x"); !p.Reachable {
		t.Fatalf("v does not reach x after the flaps: %+v", p)
	}
	// A peer's changes are reported reachBurst at once, then reachRate a
	// second, and the state after the last held back once more.
	limit := int64(reachBurst + 2 + elapsed.Seconds()*reachRate)
	if vEvents > limit {
		t.Errorf("v published %d events about x for %d flaps of one neighbour in %v (want at most %d)", vEvents, flaps, elapsed, limit)
	}
	if lines > limit+1 { // and a line when the changes held back cancelled out
		t.Errorf("v logged %d peer-up/down lines about x (want at most %d)", lines, limit)
	}
	if wEvents > limit {
		t.Errorf("w, one hop further, published %d events about x (want at most %d)", wEvents, limit)
	}
	// What subscribers last heard is the truth: x is reachable. A node
	// that heard no flap at all (v may coalesce a retraction and the
	// route after it into one update) was last told x is up when it
	// came up, before the storm.
	for _, s := range []struct {
		name string
		n    *Node
		ev   *reachWatch
	}{{"v", v, vEv}, {"w", w, wEv}} {
		waitFor(t, s.name+"'s subscribers to hear x is up", 10*time.Second, func() bool {
			p, _ := s.n.Peer("x")
			return p.Reachable && (s.ev.n.Load() == 0 || EventKind(s.ev.last.Load()) == PeerUp)
		})
	}
}
