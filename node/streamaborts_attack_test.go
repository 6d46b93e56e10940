package node

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestAttackStreamAbortsAreCounted: d's metrics show the budget of
// streams a peer ends without an open (links.QUICConfig.StreamAborts,
// here 256 refilled at 32 a second, as in links'
// TestAttackStreamsResetAtAnyRate). First h and m, honest, make
// round trips to d and give up on dials they just started: d counts no
// link closed or refused for it. Then m opens streams on its link to d as
// fast as it can and ends each before its open header is whole (reset
// with nothing sent, reset after half a header, or closed empty) until d
// closes the link; m's static link redials at once and d refuses it while
// m's bucket refills (a redial that comes after, on a loaded machine, is
// admitted; one before fails the test). d's circuitmesh_stream_aborts_links_closed_total
// shows the one link closed and circuitmesh_stream_aborts_links_refused_total
// the handshakes it refused.
func TestAttackStreamAbortsAreCounted(t *testing.T) {
	const budget = 256
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name != "d" && cfg.Name != "m" {
			return
		}
		qc := links.QUICConfig{
			Identity: cfg.Identity, Logger: cfg.Logger, ListenAddr: cfg.ListenAddr, StalledCode: circuit.CloseStalled,
			// m's flood keeps both ends busy: on a loaded machine their
			// probes went unanswered for over 2 s and m declared d dead
			// before d closed the link for the flood. Liveness is not
			// what this test is about; 50 missed probes (10 s) declare
			// a peer dead here.
			ProbeMisses: 50,
		}
		if cfg.Name == "d" {
			qc.StreamAborts = budget
		}
		cfg.NewTransport = func(h links.Handler, role links.Role) (links.Transport, error) {
			qc := qc
			qc.Handler, qc.Role = h, role
			return links.NewQUICTransport(qc)
		}
	}
	c.build("m-d", "h-d")
	c.waitRoute("m", "d", 1)
	c.waitRoute("h", "d", 1)
	m, h, d := c.nodes["m"], c.nodes["h"], c.nodes["d"]
	const (
		closedM  = "circuitmesh_stream_aborts_links_closed_total"
		refusedM = "circuitmesh_stream_aborts_links_refused_total"
	)

	// Honest: round trips, and dials cancelled as they start.
	for i := range 20 {
		from := m
		if i%2 == 1 {
			from = h
		}
		if err := roundTrip(t, from, "d", EchoService, []byte("honest")); err != nil {
			t.Fatalf("honest round trip %d: %v", i, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go cancel()
		if conn, err := from.Dial(ctx, "d", EchoService); err == nil {
			conn.Close()
		}
	}
	if cl, rf := metricValue(t, d, closedM, "", ""), metricValue(t, d, refusedM, "", ""); cl != 0 || rf != 0 {
		t.Fatalf("after honest traffic d's %s is %v and %s %v, want 0 and 0", closedM, cl, refusedM, rf)
	}

	// The attack: at most 64 times the budget, stopping once the link is
	// down.
	l := m.link("d")
	opened, took := abortStreams(t, l, 64*budget)
	t.Logf("m opened %d streams in %v before d closed its link: %v", opened, took.Round(time.Millisecond), l.Err())
	// d refuses m's redials until m's bucket is full again, the time its
	// reason for closing the link names. On a loaded machine m redialled
	// only after that (d closed the link less than 3 s before the bar
	// ended, m saw the close 2.8 s later and linked again 1.3 s after):
	// a redial admitted then is right, one admitted before it is not.
	_, bar, _ := strings.Cut(l.Err().Error(), "its links are refused until ")
	until, err := time.Parse(time.RFC3339, bar)
	if err != nil {
		t.Fatalf("the reason d closed the link for, %q, names no end to the bar: %v", l.Err(), err)
	}
	var admitted time.Time
	waitFor(t, "d to refuse one of m's redials, or admit one after the bar", patience, func() bool {
		if metricValue(t, d, refusedM, "", "") >= 1 {
			return true
		}
		if nl := m.link("d"); nl != nil && nl != l {
			admitted = time.Now()
			return true
		}
		return false
	})
	if !admitted.IsZero() {
		if admitted.Before(until) {
			t.Fatalf("d admitted m's redial at %v, before its bar ended at %v", admitted.UTC().Format(time.RFC3339Nano), until)
		}
		t.Logf("m redialled at %v, after its bar ended at %v: d admitted it", admitted.UTC().Format(time.RFC3339Nano), until)
	}
	if cl := metricValue(t, d, closedM, "", ""); cl != 1 {
		t.Errorf("d's %s is %v, want the 1 link it closed", closedM, cl)
	}
	t.Logf("d: %s %v, %s %v", closedM, metricValue(t, d, closedM, "", ""), refusedM, metricValue(t, d, refusedM, "", ""))
}

// abortStreams opens streams on l from 4 goroutines as fast as it can,
// at most most of them, and ends each before its open header is whole
// (reset with nothing sent, reset after half a header, or closed empty),
// until l's peer closes the link for it with ErrStreamAborts. It returns
// how many streams it opened and how long that took, and fails the test
// if the link stays up or ends otherwise.
func abortStreams(t *testing.T, l links.Link, most int64) (int64, time.Duration) {
	t.Helper()
	var opened atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 2*patience)
	defer cancel()
	go func() {
		select {
		case <-l.Done():
		case <-ctx.Done():
		}
		cancel()
	}()
	start := time.Now()
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				n := opened.Add(1)
				if n > most {
					return
				}
				s, err := l.OpenStream(ctx)
				if err != nil {
					return
				}
				switch n % 3 {
				case 0:
					s.Reset(0)
				case 1:
					_, _ = s.Write([]byte{1, 0})
					s.Reset(0)
				default:
					_ = s.Close()
				}
			}
		})
	}
	wg.Wait()
	n := min(opened.Load(), most)
	// An open fails as the link goes down, before Done is closed.
	select {
	case <-l.Done():
	case <-time.After(patience):
		t.Fatalf("%d streams opened on the link to %s in %v, each ended without an open, and the link is still up", n, l.Peer(), time.Since(start).Round(time.Millisecond))
	}
	took := time.Since(start)
	if err := l.Err(); !errors.Is(err, links.ErrStreamAborts) {
		t.Fatalf("the link to %s ended with %v, want ErrStreamAborts", l.Peer(), err)
	}
	return n, took
}
