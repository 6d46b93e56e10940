package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestStalledReadersCannotStarveALink: node a holds a valid certificate
// and opens circuits through relay r to d that pin link buffer without
// progress: 24 to a service of d that accepts and never reads, and 24 to
// d's echo service whose replies a never reads. Together they could hold
// more than the receive window of every link they cross (r-d at both ends,
// a-r). Circuits from the honest node h through r to d's echo service
// share the link r-d: each moves all its bytes both ways, the links' QUIC
// windows are the configured ones, and the stalled circuits are reset with
// circuit.CloseStalled, counted in the metrics.
func TestStalledReadersCannotStarveALink(t *testing.T) {
	const (
		streamWindow = 64 << 10
		linkWindow   = 1 << 20
		attackers    = 24
		honest       = 3
		honestBytes  = 2 << 20
	)
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.StreamWindow = streamWindow
		cfg.Limits.LinkWindow = linkWindow
		cfg.Limits.ReaderStall = 500 * time.Millisecond
	}
	c.build("a-r", "h-r", "r-d")
	c.waitRoute("a", "d", 2)
	c.waitRoute("h", "d", 2)
	for _, name := range []string{"a", "r", "d", "h"} {
		n := c.nodes[name]
		lw, sw := n.transport.(*links.QUICTransport).ReceiveWindows()
		if lw != linkWindow || sw != streamWindow {
			t.Fatalf("%s: link window %d, stream window %d; want %d and %d", name, lw, sw, linkWindow, streamWindow)
		}
	}

	startSink(t, c.nodes["d"]) // accepts and never reads

	// The attack: each circuit writes until it fails and never reads.
	a := c.nodes["a"]
	var attack sync.WaitGroup
	var stalled, otherEnd atomic.Int64
	var lastOther atomic.Value
	chunk := make([]byte, 16<<10)
	var conns sync.Map
	var opened int64
	for i := range 2 * attackers {
		service := "sink"
		if i%2 == 1 {
			service = EchoService
		}
		// Fail-fast circuits: a resumable end would read everything into
		// its own window, which is what an attacker does not do.
		conn, err := a.DialWith(ctxT(t, 10*time.Second), "d", service, DialOptions{NoResume: true})
		if err != nil { // the circuits opened so far starve the links
			t.Logf("attacking circuit %d: %v", i, err)
			continue
		}
		conns.Store(i, conn)
		opened++
		attack.Go(func() {
			for {
				if _, err := conn.Write(chunk); err != nil {
					var re *circuit.ResetError
					if errors.As(err, &re) && re.Code.Reason() == circuit.CloseStalled {
						stalled.Add(1)
					} else {
						otherEnd.Add(1)
						lastOther.Store(err.Error())
					}
					return
				}
			}
		})
	}
	t.Cleanup(func() {
		conns.Range(func(_, v any) bool { v.(Conn).Close(); return true })
		attack.Wait()
	})

	// The honest circuits carry all their bytes both ways.
	h := c.nodes["h"]
	payload := bytes.Repeat([]byte("honest bytes "), honestBytes/13)
	errs := make(chan error, honest)
	for i := range honest {
		go func() {
			errs <- func() error {
				conn, err := h.Dial(ctxT(t, 30*time.Second), "d", EchoService)
				if err != nil {
					return fmt.Errorf("honest circuit %d: %w", i, err)
				}
				defer conn.Close()
				wrote := make(chan error, 1)
				go func() {
					_, err := conn.Write(payload)
					if err == nil {
						err = conn.CloseWrite()
					}
					wrote <- err
				}()
				got, err := io.ReadAll(conn)
				if werr := <-wrote; werr != nil {
					return fmt.Errorf("honest circuit %d: write: %w", i, werr)
				}
				if err != nil {
					return fmt.Errorf("honest circuit %d: read after %d bytes: %w", i, len(got), err)
				}
				if !bytes.Equal(got, payload) {
					return fmt.Errorf("honest circuit %d: %d bytes echoed, want %d", i, len(got), len(payload))
				}
				return nil
			}()
		}()
	}
	for range honest {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("honest circuits did not deliver their bytes; attacking circuits reset stalled %d, otherwise %d", stalled.Load(), otherEnd.Load())
		}
	}

	// Half a link window holds 8 stalled streams of 64 KiB: the sink
	// circuits stall first at d, the echo circuits at a, so 16 can be kept;
	// the test allows one link side more for circuits the path ends with
	// another reason. Every other circuit that opened is reset as stalled.
	const kept = 3 * (linkWindow / 2 / streamWindow)
	want := max(opened-kept, 1)
	waitFor(t, fmt.Sprintf("%d of %d attacking circuits reset as stalled", want, opened), time.Minute, func() bool { return stalled.Load() >= want })
	var reset uint64
	for _, name := range []string{"a", "r", "d"} {
		rec := httptest.NewRecorder()
		c.nodes[name].MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		m := grepLines(rec.Body.String(), "circuitmesh_stalled_circuits_reset_total ")
		var v uint64
		if _, err := fmt.Sscanf(m[strings.LastIndexByte(m, ' ')+1:], "%d", &v); err != nil {
			t.Fatalf("%s metrics: %q", name, m)
		}
		reset += v
	}
	other, _ := lastOther.Load().(string)
	t.Logf("attacking circuits reset as stalled: %d of %d (ended otherwise: %d, e.g. %q); streams reset by a, r, d: %d",
		stalled.Load(), 2*attackers, otherEnd.Load(), other, reset)
	if reset == 0 {
		t.Fatal("the metrics count no stalled circuit reset")
	}
}

// TestStalledCodeIsCloseStalled: links resets reclaimed streams with the
// circuit layer's code when none is configured.
func TestStalledCodeIsCloseStalled(t *testing.T) {
	if links.DefaultStalledCode != circuit.CloseStalled {
		t.Fatalf("links.DefaultStalledCode %d, circuit.CloseStalled %d", links.DefaultStalledCode, circuit.CloseStalled)
	}
	if name := circuit.CloseName(circuit.CloseStalled); !strings.Contains(name, "stalled") {
		t.Fatalf("CloseStalled is named %q", name)
	}
}
