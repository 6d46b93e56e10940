package links

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is a Handler that records events.
type recorder struct {
	mu     sync.Mutex
	ups    int
	downs  int
	errs   []error
	upCost Quality   // the quality at the latest LinkUp
	costs  []Quality // every CostChanged since
	routed [][]byte
	ev     chan string // "up", "down", "cost", "routing"; dropped when full
}

func newRecorder() *recorder { return &recorder{ev: make(chan string, 1024)} }

func (r *recorder) note(s string) {
	select {
	case r.ev <- s:
	default:
	}
}

func (r *recorder) LinkUp(l Link) {
	r.mu.Lock()
	r.ups++
	r.upCost = l.Quality()
	r.mu.Unlock()
	r.note("up")
}

func (r *recorder) Routing(_ Link, p []byte) {
	r.mu.Lock()
	r.routed = append(r.routed, p)
	r.mu.Unlock()
	r.note("routing")
}

func (r *recorder) CostChanged(_ Link, q Quality) {
	r.mu.Lock()
	r.costs = append(r.costs, q)
	r.mu.Unlock()
	r.note("cost")
}

func (r *recorder) LinkDown(_ Link, err error) {
	r.mu.Lock()
	r.downs++
	r.errs = append(r.errs, err)
	r.mu.Unlock()
	r.note("down")
}

// reported returns the cost the handler was last told (by CostChanged,
// or by the link's quality at LinkUp) and the number of CostChanged calls.
func (r *recorder) reported() (last Cost, changes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.costs); n > 0 {
		return r.costs[n-1].Cost, n
	}
	return r.upCost.Cost, 0
}

func (r *recorder) counts() (ups, downs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ups, r.downs
}

// waitEvent waits for the named event.
func (r *recorder) waitEvent(t testing.TB, name string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e := <-r.ev:
			if e == name {
				return
			}
		case <-deadline:
			t.Fatalf("no %q event within %v", name, timeout)
		}
	}
}

// testCA is the mesh CA the tests issue node identities from.
func testCA(t testing.TB, mesh string) *identity.CA {
	t.Helper()
	ca, err := identity.NewCA(mesh, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t testing.TB, ca *identity.CA, node string) *identity.Identity {
	t.Helper()
	id, err := ca.Issue(node, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// node is one transport under test with its recorder.
type node struct {
	*QUICTransport
	rec     *recorder
	refused chan error
}

// newNode starts a transport; mod adjusts the configuration.
func newNode(t testing.TB, id *identity.Identity, mod func(*QUICConfig)) *node {
	t.Helper()
	n := &node{rec: newRecorder(), refused: make(chan error, 16)}
	cfg := QUICConfig{
		Identity: id,
		Handler:  n.rec,
		Logger:   quietLogger(),
		OnRefused: func(_ net.Addr, err error) {
			select {
			case n.refused <- err:
			default: // the first 16 are kept: a flood of strangers is refused at once
			}
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	tr, err := NewQUICTransport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.QUICTransport = tr
	t.Cleanup(func() { _ = tr.Close() })
	return n
}

// patience bounds the waits for an event the tests expect: generous, as
// a CPU-starved machine takes many times longer than an idle one, and a
// wait ends as soon as its condition holds.
const patience = time.Minute

// pair starts two nodes of one mesh and links a to b.
func pair(t testing.TB) (a, b *node, la Link) {
	t.Helper()
	return pairWith(t, nil)
}

// pairWith is pair with mod applied to both nodes' configuration.
func pairWith(t testing.TB, mod func(*QUICConfig)) (a, b *node, la Link) {
	t.Helper()
	ca := testCA(t, "m")
	a = newNode(t, issue(t, ca, "a"), mod)
	b = newNode(t, issue(t, ca, "b"), mod)
	la = dial(t, a, b)
	b.rec.waitEvent(t, "up", patience)
	return a, b, la
}

// tolerant gives a link a failure detector that waits a minute: for
// tests of the data path, which a CPU-starved machine must not fail by
// declaring a live peer dead (the detector has its own tests).
func tolerant(c *QUICConfig) { c.ProbeMisses = int(patience / DefaultProbeInterval) }

func dial(t testing.TB, from, to *node) Link {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	l, err := from.Dial(ctx, to.LocalAddr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return l
}

// waitFor polls cond until it holds.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func stringsContains(s, sub string) bool { return strings.Contains(s, sub) }
