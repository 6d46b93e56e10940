package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

// slowHeaders is a misbehaving neighbour holding a valid certificate: on
// its link it keeps streams open that each carry the first byte of an open
// header and nothing more, renewing every stream the target ends.
type slowHeaders struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	ended   atomic.Int64 // streams the target ended (refused or timed out)
	written atomic.Int64 // streams that got their byte out
}

func startSlowHeaders(t testing.TB, l links.Link, streams int) *slowHeaders {
	t.Helper()
	hdr, err := (&circuit.Open{Dest: "d", Source: l.Peer(), Service: EchoService, HopLimit: 8}).AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &slowHeaders{cancel: cancel}
	for range streams {
		f.wg.Go(func() {
			for ctx.Err() == nil {
				s, err := l.OpenStream(ctx)
				if err != nil {
					return // the link or the test ended
				}
				stop := context.AfterFunc(ctx, func() { s.Reset(0) })
				if _, err := s.Write(hdr[:1]); err == nil {
					f.written.Add(1)
				}
				_, _ = io.Copy(io.Discard, s) // until the target refuses or resets
				stop()
				s.Reset(0)
				f.ended.Add(1)
				select { // renew, a little later
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
	t.Cleanup(f.stop)
	return f
}

func (f *slowHeaders) stop() {
	f.cancel()
	f.wg.Wait()
}

// echoes runs n round trips from a to d's echo service and returns how
// many succeeded.
func echoes(t *testing.T, a *Node, n int) int {
	t.Helper()
	ok := 0
	for i := range n {
		// An honest client retries once.
		for try := range 2 {
			err := roundTrip(t, a, "d", EchoService, bytes.Repeat([]byte("x"), 1024))
			if err == nil {
				ok++
				break
			}
			t.Logf("honest circuit %d, try %d: %v", i, try+1, err)
		}
	}
	return ok
}

// TestSlowHeaderFloodFromOneLink: a neighbour with a valid certificate
// keeps 300 streams open on its link to d, each carrying one byte of an
// open header, more than d's node-wide 256 pending-open slots. Every
// circuit from another neighbour is still served (within one retry), the
// slow link holds at most its share of open headers being read (its other
// streams wait their turn), and d ends the slow streams.
func TestSlowHeaderFloodFromOneLink(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-d", "m-d")
	c.waitRoute("a", "d", 1)
	d := c.nodes["d"]
	const rounds = 10
	base := echoes(t, c.nodes["a"], rounds)
	if base != rounds {
		t.Fatalf("without the flood %d of %d circuits succeeded", base, rounds)
	}

	flood := startSlowHeaders(t, c.nodes["m"].link("d"), 300)
	var most atomic.Int64 // most pending opens of m's link at once
	stopWatch := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			most.Store(max(most.Load(), int64(d.limits.pendingOn("m"))))
			select {
			case <-stopWatch:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	waitFor(t, "the slow streams to be written", time.Minute, func() bool {
		return flood.written.Load() >= 300
	})
	during := echoes(t, c.nodes["a"], rounds)
	close(stopWatch)
	watch.Wait()
	refused := d.limits.pendingRefused.Load()
	flood.stop()
	t.Logf("honest circuits: %d/%d without the flood, %d/%d during it; slow streams written %d, ended %d; d refused %d, m's link held at most %d pending opens",
		base, rounds, during, rounds, flood.written.Load(), flood.ended.Load(), refused, most.Load())
	if during != rounds {
		t.Fatalf("during the flood %d of %d honest circuits succeeded, want every one", during, rounds)
	}
	if flood.ended.Load() == 0 {
		t.Fatal("d never ended a slow stream")
	}
	if share := int64(d.cfg.Limits.MaxPendingOpensPerLink); most.Load() > share {
		t.Fatalf("m's link held %d pending opens, more than its share %d", most.Load(), share)
	}
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

// TestHandshakeRefusalsInMetrics: a peer whose certificate is not from the
// mesh CA is refused in the handshake, and the node's metrics count the
// failed handshake.
func TestHandshakeRefusalsInMetrics(t *testing.T) {
	c := newCluster(t, true)
	d := c.add("d")
	id := foreignIdentity(t)
	tr, err := links.NewQUICTransport(links.QUICConfig{Identity: id, Handler: nopHandler{}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Dial(ctxT(t, 10*time.Second), d.Addr().String()); !errors.Is(err, links.ErrRefused) {
		t.Fatalf("dial with a certificate of another CA: %v, want ErrRefused", err)
	}
	waitFor(t, "the failed handshake in d's metrics", 30*time.Second, func() bool {
		rec := httptest.NewRecorder()
		d.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		m := grepLines(rec.Body.String(), "circuitmesh_link_handshakes_failed_total ")
		return m != "" && !strings.HasSuffix(m, " 0")
	})
}

// foreignIdentity is an identity named x issued by a CA of the same mesh
// name that the nodes under test do not trust.
func foreignIdentity(t testing.TB) *identity.Identity {
	t.Helper()
	other, err := identity.NewCA("test", 0)
	if err != nil {
		t.Fatal(err)
	}
	id, err := other.Issue("x", 0)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// nopHandler ignores link events.
type nopHandler struct{}

func (nopHandler) LinkUp(links.Link)                     {}
func (nopHandler) LinkDown(links.Link, error)            {}
func (nopHandler) Routing(links.Link, []byte)            {}
func (nopHandler) CostChanged(links.Link, links.Quality) {}
