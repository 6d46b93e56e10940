package memlink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

func TestDialHelloAndEvents(t *testing.T) {
	n := NewNetwork(Config{})
	ns := newNodes(t, n, "a")
	rec := newRecorder()
	b, err := n.Transport(TransportConfig{Name: "b", Mesh: "m", Role: links.RoleLeaf, Features: 5, Handler: rec})
	if err != nil {
		t.Fatal(err)
	}
	a := ns[0]
	l := dial(t, a.t, "b")
	if l.Peer() != "b" || l.PeerRole() != links.RoleLeaf || l.PeerFeatures() != 5 || !l.Outbound() ||
		l.LocalAddr().String() != "a" || l.RemoteAddr().String() != "b" || l.Established().IsZero() {
		t.Fatalf("link = peer %s role %v features %d outbound %v", l.Peer(), l.PeerRole(), l.PeerFeatures(), l.Outbound())
	}
	if again := dial(t, a.t, "b"); again != l {
		t.Fatal("second dial made another link")
	}
	back := dial(t, b, "a")
	if back.Outbound() || back.Peer() != "a" || back.PeerRole() != links.RoleRouter {
		t.Fatal("dial back did not return the accepted end")
	}
	if q := l.Quality(); q.Cost != links.MinCost {
		t.Fatalf("default cost %d", q.Cost)
	}
	if err := l.SendRouting([]byte("r1")); err != nil {
		t.Fatal(err)
	}
	n.SetCost("b", "a", 300)
	if err := l.SendRouting([]byte("r2")); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "up a", "routing a r1", "cost a 300", "routing a r2")
	if q := back.Quality(); q.Cost != 300 || q.RTT != 3*time.Millisecond {
		t.Fatalf("quality after SetCost = %+v", q)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "up a", "routing a r1", "cost a 300", "routing a r2", "down a")
	a.rec.waitFor(t, "up b", "cost b 300", "down b")
	if !errors.Is(back.Err(), links.ErrClosed) || !errors.Is(l.Err(), links.ErrLinkLost) {
		t.Fatalf("errors after close: local %v, remote %v", back.Err(), l.Err())
	}
	if err := l.SendRouting([]byte("late")); !errors.Is(err, links.ErrLinkLost) {
		t.Fatalf("SendRouting on dead link = %v", err)
	}
	if len(a.t.Links()) != 0 {
		t.Fatal("dead link still listed")
	}
	if _, err := b.Dial(context.Background(), "a"); !errors.Is(err, links.ErrClosed) {
		t.Fatalf("dial from closed transport = %v", err)
	}
}

func TestHelloRefusesOtherMesh(t *testing.T) {
	n := NewNetwork(Config{})
	a := newNodes(t, n, "a")[0]
	rec := newRecorder()
	other, err := n.Transport(TransportConfig{Name: "x", Mesh: "other", Handler: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, err = a.t.Dial(context.Background(), "x")
	if !errors.Is(err, links.ErrRefused) || !strings.Contains(err.Error(), `mesh "other", not "m"`) {
		t.Fatalf("dial other mesh = %v", err)
	}
	if _, err := a.t.Dial(context.Background(), "nobody"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("dial unknown = %v", err)
	}
	if _, err := a.t.Dial(context.Background(), "a"); !errors.Is(err, links.ErrRefused) {
		t.Fatalf("dial self = %v", err)
	}
	if _, err := n.Transport(TransportConfig{Name: "a", Mesh: "m"}); err == nil {
		t.Fatal("duplicate name accepted")
	}
	if _, err := n.Transport(TransportConfig{Name: "Bad Name", Mesh: "m"}); err == nil {
		t.Fatal("invalid name accepted")
	}
	if len(a.rec.snapshot())+len(rec.snapshot()) != 0 {
		t.Fatal("refused link produced events")
	}
}

func TestSimultaneousDialMakesOneLink(t *testing.T) {
	n := NewNetwork(Config{})
	ns := newNodes(t, n, "a", "b")
	var wg sync.WaitGroup
	got := make([][]links.Link, 2)
	for i := range ns {
		got[i] = make([]links.Link, 8)
		for j := range got[i] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := ns[i].t.Dial(context.Background(), ns[1-i].t.name)
				if err != nil {
					t.Error(err)
				}
				got[i][j] = l
			}()
		}
	}
	wg.Wait()
	for i := range ns {
		for _, l := range got[i] {
			if l != got[i][0] {
				t.Fatalf("%s got two different links", ns[i].t.name)
			}
		}
		if len(ns[i].t.Links()) != 1 {
			t.Fatalf("%s has %d links", ns[i].t.name, len(ns[i].t.Links()))
		}
	}
	if got[0][0].Outbound() == got[1][0].Outbound() {
		t.Fatal("both ends claim the same direction")
	}
	ns[0].rec.waitFor(t, "up b")
	ns[1].rec.waitFor(t, "up a")
}

func TestRoutingQueueBounded(t *testing.T) {
	n := NewNetwork(Config{ControlQueue: 4})
	ns := newNodes(t, n, "a", "b")
	gate := make(chan struct{})
	ns[1].rec.gate = gate
	l := dial(t, ns[0].t, "b")
	ns[1].rec.waitFor(t, "up a")
	// The handler blocks in the first Routing; four more fit in the queue.
	var sent []string
	var full error
	for i := 0; i < 10 && full == nil; i++ {
		p := fmt.Sprint(i)
		if full = l.SendRouting([]byte(p)); full == nil {
			sent = append(sent, "routing a "+p)
		}
		time.Sleep(time.Millisecond) // let the first one reach the handler
	}
	if !errors.Is(full, links.ErrQueueFull) {
		t.Fatalf("no ErrQueueFull after %d payloads: %v", len(sent), full)
	}
	if len(sent) < 4 || len(sent) > 5 {
		t.Fatalf("%d payloads accepted with a queue of 4", len(sent))
	}
	close(gate)
	ns[1].rec.waitFor(t, append([]string{"up a"}, sent...)...)
}

// A link whose receiver has stalled holds at most ControlBytes of routing
// payloads; the rest is dropped with ErrQueueFull, as on a full QUIC
// control queue, and what was queued arrives once the receiver goes on.
func TestRoutingQueueBoundedInBytes(t *testing.T) {
	n := NewNetwork(Config{ControlBytes: 1000})
	ns := newNodes(t, n, "a", "b")
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	ns[1].rec.gate, ns[1].rec.entered = gate, entered
	l := dial(t, ns[0].t, "b")
	ns[1].rec.waitFor(t, "up a")
	payload := func(i int) []byte { return fmt.Appendf(nil, "%d:%0300d", i, 0) }
	// The first payload reaches the stalled handler; three more fit in
	// 1000 bytes, the fourth does not.
	if err := l.SendRouting(payload(0)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the first payload never reached the handler")
	}
	var sent []string
	var full error
	for i := 1; i < 10 && full == nil; i++ {
		p := payload(i)
		if full = l.SendRouting(p); full == nil {
			sent = append(sent, "routing a "+string(p))
		}
	}
	if !errors.Is(full, links.ErrQueueFull) {
		t.Fatalf("no ErrQueueFull after %d payloads: %v", len(sent), full)
	}
	if len(sent) != 3 {
		t.Fatalf("%d payloads of 302 bytes accepted behind a stalled reader, want 3 (1000 bytes)", len(sent))
	}
	if got, want := n.RoutingLoad(), (RoutingLoad{Payloads: 3, Bytes: 906, PeakBytes: 906, Dropped: 1}); got != want {
		t.Fatalf("RoutingLoad behind the stalled reader = %+v, want %+v", got, want)
	}
	close(gate)
	ns[1].rec.waitFor(t, append([]string{"up a", "routing a " + string(payload(0))}, sent...)...)
	if got, want := n.RoutingLoad(), (RoutingLoad{PeakBytes: 906, Dropped: 1}); got != want {
		t.Fatalf("RoutingLoad once delivered = %+v, want %+v", got, want)
	}
	// Drained, the link takes a payload larger than the bound by itself.
	big := make([]byte, 3000)
	if err := l.SendRouting(big); err != nil {
		t.Fatalf("a payload over the bound on an empty queue: %v", err)
	}
	// A payload no control frame can carry is refused, as a QUIC link
	// refuses it.
	if err := l.SendRouting(make([]byte, links.MaxFrameSize+1)); !errors.Is(err, links.ErrFrameTooLarge) {
		t.Fatalf("a payload of MaxFrameSize+1 bytes: %v, want ErrFrameTooLarge", err)
	}
}

func TestCloseReasonReachesPeer(t *testing.T) {
	n := NewNetwork(Config{})
	ns := newNodes(t, n, "a", "b")
	l := dial(t, ns[0].t, "b")
	r := peerEnd(t, ns[1].t, "a")
	s1, s2 := streamPairOn(t, l, r)
	if err := l.Close("going for maintenance"); err != nil {
		t.Fatal(err)
	}
	waitDone(t, r)
	if err := r.Err(); !errors.Is(err, links.ErrLinkLost) || !strings.Contains(err.Error(), "going for maintenance") {
		t.Fatalf("peer Err = %v", err)
	}
	if err := l.Err(); !errors.Is(err, links.ErrClosed) {
		t.Fatalf("local Err = %v", err)
	}
	for _, s := range []links.Stream{s1, s2} {
		if _, err := s.Read(make([]byte, 1)); !errors.Is(err, links.ErrLinkLost) {
			t.Fatalf("stream Read after link close = %v", err)
		}
		if _, err := s.Write([]byte("x")); !errors.Is(err, links.ErrLinkLost) {
			t.Fatalf("stream Write after link close = %v", err)
		}
	}
	if _, err := l.OpenStream(context.Background()); !errors.Is(err, links.ErrClosed) {
		t.Fatalf("OpenStream on closed link = %v", err)
	}
	if _, err := r.AcceptStream(context.Background()); !errors.Is(err, links.ErrLinkLost) {
		t.Fatalf("AcceptStream on lost link = %v", err)
	}
	ns[1].rec.waitFor(t, "up a", "down a")
	// LinkDown comes exactly once, whatever else happens to the link.
	l.Close("again")
	r.Close("and again")
	n.Cut("a", "b")
	n.SetCost("a", "b", 99)
	time.Sleep(20 * time.Millisecond)
	ns[0].rec.waitFor(t, "up b", "down b")
	ns[1].rec.waitFor(t, "up a", "down a")
}

func TestMaxStreams(t *testing.T) {
	n := NewNetwork(Config{})
	a := newNodes(t, n, "a")[0]
	b, err := n.Transport(TransportConfig{Name: "b", Mesh: "m", MaxStreams: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	l := dial(t, a.t, "b")
	r := peerEnd(t, b, "a")
	s1, r1 := streamPairOn(t, l, r)
	s2, r2 := streamPairOn(t, l, r)
	if l.OpenStreams() != 2 || r.OpenStreams() != 2 {
		t.Fatalf("open streams %d/%d, want 2/2", l.OpenStreams(), r.OpenStreams())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := l.OpenStream(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third OpenStream = %v, want to wait until the deadline", err)
	}
	if _, err := l.(links.StreamTrier).TryOpenStream(); !errors.Is(err, links.ErrNoStreamCredit) {
		t.Fatalf("third TryOpenStream = %v, want ErrNoStreamCredit at once", err)
	}
	opened := make(chan error, 1)
	go func() {
		_, err := l.OpenStream(context.Background())
		opened <- err
	}()
	// A half-closed stream still counts; a finished one frees its slot.
	if err := s1.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-opened:
		t.Fatalf("OpenStream returned (%v) while 2 streams are open", err)
	case <-time.After(20 * time.Millisecond):
	}
	r1.Close()
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	s2.Reset(1)
	_ = r2
	if got := l.OpenStreams(); got != 2 { // s1 (still readable) and the new one
		t.Fatalf("opener counts %d open streams, want 2", got)
	}
}

func TestHandlerNil(t *testing.T) {
	n := NewNetwork(Config{})
	a, err := n.Transport(TransportConfig{Name: "a", Mesh: "m"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.Transport(TransportConfig{Name: "b", Mesh: "m"})
	if err != nil {
		t.Fatal(err)
	}
	l := dial(t, a, "b")
	if err := l.SendRouting([]byte("x")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b.Close()
	waitDone(t, l)
}
