package memlink

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Handler that records each link's events as text.
type recorder struct {
	mu     sync.Mutex
	events []string
	down   map[string]error
	gate   chan struct{} // when set, Routing waits on it
	// entered, when set, is signalled (without blocking) as Routing starts.
	entered chan struct{}
	notify  chan struct{}
}

func newRecorder() *recorder {
	return &recorder{down: make(map[string]error), notify: make(chan struct{}, 1)}
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.events = append(r.events, s)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) LinkUp(l links.Link) { r.add("up " + l.Peer()) }
func (r *recorder) Routing(l links.Link, p []byte) {
	select {
	case r.entered <- struct{}{}:
	default:
	}
	if r.gate != nil {
		<-r.gate
	}
	r.add(fmt.Sprintf("routing %s %s", l.Peer(), p))
}
func (r *recorder) CostChanged(l links.Link, q links.Quality) {
	r.add(fmt.Sprintf("cost %s %d", l.Peer(), q.Cost))
}
func (r *recorder) LinkDown(l links.Link, err error) {
	r.mu.Lock()
	r.down[l.Peer()] = err
	r.mu.Unlock()
	r.add("down " + l.Peer())
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// waitFor waits until the recorded events equal want.
func (r *recorder) waitFor(t *testing.T, want ...string) {
	t.Helper()
	r.wait(t, false, want)
}

// waitForUnordered waits until the recorded events are want in any order
// (events of different links are not ordered).
func (r *recorder) waitForUnordered(t *testing.T, want ...string) {
	t.Helper()
	r.wait(t, true, want)
}

func (r *recorder) wait(t *testing.T, unordered bool, want []string) {
	t.Helper()
	if unordered {
		want = slices.Sorted(slices.Values(want))
	}
	deadline := time.After(5 * time.Second)
	for {
		got := r.snapshot()
		if unordered {
			slices.Sort(got)
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		select {
		case <-r.notify:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("events = %q, want %q", got, want)
		}
	}
}

type node struct {
	t   *Transport
	rec *recorder
}

// newNodes registers transports named names in mesh "m" and closes them
// when the test ends.
func newNodes(t *testing.T, n *Network, names ...string) []node {
	t.Helper()
	var out []node
	for _, name := range names {
		rec := newRecorder()
		tr, err := n.Transport(TransportConfig{Name: name, Mesh: "m", Handler: rec})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		out = append(out, node{tr, rec})
	}
	return out
}

func dial(t *testing.T, from *Transport, to string) links.Link {
	t.Helper()
	l, err := from.Dial(context.Background(), to)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// peerEnd returns the link end at tr whose peer is name.
func peerEnd(t *testing.T, tr *Transport, name string) links.Link {
	t.Helper()
	for _, l := range tr.Links() {
		if l.Peer() == name {
			return l
		}
	}
	t.Fatalf("%s has no link to %s", tr.LocalAddr(), name)
	return nil
}

// streamPairOn opens a stream from l and accepts it at the peer end r.
func streamPairOn(t *testing.T, l, r links.Link) (links.Stream, links.Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s1, err := l.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := r.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s1, s2
}

func waitDone(t *testing.T, l links.Link) {
	t.Helper()
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("link %s not down", l.Peer())
	}
}
