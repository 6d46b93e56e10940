package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// droppingStream is a relay's stream toward the source that, once drop
// is set, drops what the relay writes to it and counts it: what the
// destination sent is lost in transit, as with a relay that dies. It
// never forwards again once it dropped: bytes after a gap would reach
// the source as a tampered stream.
type droppingStream struct {
	links.Stream
	drop    *atomic.Bool
	dropped *atomic.Int64
}

func (s droppingStream) Write(b []byte) (int, error) {
	if s.drop.Load() {
		s.dropped.Add(int64(len(b)))
		return len(b), nil
	}
	return s.Stream.Write(b)
}

// TestHonestRerouteResendsWithinBudget: h holds rerouteCircuits resumable
// circuits to d's bulk service through r, together as much unacknowledged
// at d as h's share of d's resume buffers allows, and loses all of it in
// transit: r drops what d sends toward h, then resets every circuit it
// carries, as on its crash. Every circuit resumes and d sends all of it
// again; the budget of re-sent bytes (a bucket of ResumeBufferPerSource,
// here earning next to nothing) refuses none of h's resumes, and every
// download arrives intact.
func TestHonestRerouteResendsWithinBudget(t *testing.T) {
	// 16 downloads of 512 KiB: 8 MiB unacknowledged at d, within the
	// share of MinResumeBuffer with the receive queues' 4 KiB each.
	const rerouteCircuits = 16
	var drop, rerouted atomic.Bool
	var dropped atomic.Int64
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.ResumeBufferPerSource = MinResumeBuffer
		// The bucket alone takes the reroute: it earns 1 byte a second.
		cfg.Limits.ResumeResendPerSource = 1
		cfg.Limits.HeaderTimeout = patience
		cfg.ResumeTimeout = patience
		if cfg.Name == "r" {
			cfg.hooks = &hooks{relay: func(in, out links.Stream) (links.Stream, links.Stream) {
				if rerouted.Load() {
					return in, out // the resumed paths
				}
				return droppingStream{in, &drop, &dropped}, out
			}}
		}
	}
	c.build("h-r", "r-d")
	c.waitRoute("h", "d", 2)
	h, r, d := c.nodes["h"], c.nodes["r"], c.nodes["d"]
	release := make(chan struct{})
	serveBulk(t, d, release)
	overloaded := d.metrics.circuitsRefused.WithLabelValues(codeLabel(circuit.Overloaded))
	refused0 := counterValue(overloaded)

	conns := make([]net.Conn, rerouteCircuits)
	defer func() {
		for _, cn := range conns {
			if cn != nil {
				cn.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, rerouteCircuits)
	for i := range conns {
		wg.Go(func() {
			cn, err := h.Dial(ctxT(t, patience), "d", bulkService)
			if err != nil {
				errs[i] = err
				return
			}
			conns[i] = cn
			cn.SetDeadline(time.Now().Add(patience))
			if _, err := cn.Write([]byte("x")); err != nil {
				errs[i] = err
				return
			}
			// The first byte proves the circuit registered at d.
			_, errs[i] = io.ReadFull(cn, make([]byte, 1))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("h's circuit %d to d: %v", i, err)
		}
	}
	// r drops what d sends from now on, and d sends the rest of each
	// download. h waits for nothing meanwhile: its request was
	// acknowledged with the first byte.
	drop.Store(true)
	close(release)
	// dropped counts the records' overhead too: d has sent all once r
	// dropped at least the downloads and then nothing more for a second.
	var last int64
	var still time.Time
	waitFor(t, "r to drop all of d's downloads", patience, func() bool {
		n := dropped.Load()
		if n != last || n < rerouteCircuits*(bulkSize-1) {
			last, still = n, time.Now()
			return false
		}
		return time.Since(still) >= time.Second
	})
	resent0 := d.resumeTable.Resent()
	rerouted.Store(true)
	r.circuits.resetAll()
	start := time.Now()
	for i, cn := range conns {
		wg.Go(func() {
			got, err := io.ReadAll(io.LimitReader(cn, bulkSize-1))
			switch {
			case err != nil:
				errs[i] = err
			case !bytes.Equal(got, bulkData[1:]):
				errs[i] = fmt.Errorf("got %d bytes, not the %d sent", len(got), bulkSize-1)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	resent := d.resumeTable.Resent() - resent0
	refused := counterValue(overloaded) - refused0
	t.Logf("r dropped %d bytes of d's %d downloads of %d bytes; after r reset them, d sent %d positions again for h (its bucket %d bytes), refused %v resume opens overloaded; the downloads ended %v after the reset",
		dropped.Load(), rerouteCircuits, bulkSize, resent, MinResumeBuffer, refused, took.Round(time.Millisecond))
	for i, err := range errs {
		if err != nil {
			t.Errorf("h's download %d after the reroute: %v", i, err)
		}
	}
	if refused > 0 {
		t.Errorf("d refused %v of h's resume opens overloaded, want none: a reroute of all of a source's circuits sends again at most its share", refused)
	}
	if got := metricValue(t, d, "circuitmesh_resume_resend_refused_total", "", ""); got != 0 {
		t.Errorf("d's circuitmesh_resume_resend_refused_total is %v after h's honest reroute, want 0", got)
	}
	if resent < rerouteCircuits*(bulkSize-1) {
		t.Errorf("d sent %d positions again, want at least the %d lost with r: the reroute did not test the budget", resent, rerouteCircuits*(bulkSize-1))
	}
}

// The budget of re-sent bytes defaults to an eighth of the source's share
// a second (8 MiB with the defaults), follows a share set by hand, keeps
// a rate set by hand, and refuses a negative one.
func TestResumeResendDefault(t *testing.T) {
	for _, tc := range []struct {
		name        string
		share, rate int
		want        int
	}{
		{"defaults", 0, 0, DefaultResumeBuffer / 4 / 8},
		{"share set", 16 << 20, 0, 2 << 20},
		{"rate set", 0, 1000, 1000},
		{"negative", 0, -1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Name: "n", Limits: Limits{ResumeBufferPerSource: tc.share, ResumeResendPerSource: tc.rate}}
			cfg.setDefaults()
			err := cfg.validate()
			if tc.want < 0 {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("validate: %v, want ErrInvalidConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("validate: %v", err)
			}
			if got := cfg.Limits.ResumeResendPerSource; got != tc.want {
				t.Errorf("ResumeResendPerSource = %d, want %d", got, tc.want)
			}
		})
	}
}
