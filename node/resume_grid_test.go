package node

import (
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stallMeter records the longest time a counter did not move.
type stallMeter struct {
	mu      sync.Mutex
	longest time.Duration
	lastAt  time.Time // when the counter last moved, or the meter was taken
	stop    chan struct{}
	done    chan struct{}
}

func newStallMeter(counter *atomic.Int64) *stallMeter {
	m := &stallMeter{lastAt: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		last := counter.Load()
		for {
			select {
			case <-m.stop:
				return
			case <-time.After(time.Millisecond):
			}
			now := time.Now()
			m.mu.Lock()
			if v := counter.Load(); v != last {
				last, m.lastAt = v, now
			}
			m.longest = max(m.longest, now.Sub(m.lastAt))
			m.mu.Unlock()
		}
	}()
	return m
}

// take returns the longest stall since the previous take and starts over:
// the next stall counts from now.
func (m *stallMeter) take() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.longest
	m.longest, m.lastAt = 0, time.Now()
	return d
}

func (m *stallMeter) close() {
	close(m.stop)
	<-m.done
}

// A transfer across a 3×3 grid of QUIC nodes, from corner g00 to corner
// g22, survives five relay crashes in a row: each time the relay the
// circuit runs through (from its recorded path) loses its socket with no
// goodbye, the circuit takes another path, and the crashed node then
// comes back (a new process with the same name) so that the next crash
// still leaves a path. The destination's SHA-256 of everything comes back
// right and neither application sees an error; the longest stall per
// crash is logged. The quick suite (-short) crashes two relays in a row,
// the slowest part being each restart's reconvergence (66 s for five on a
// loaded machine); `make test-long` runs all five.
func TestResumeGridFiveRelayCrashes(t *testing.T) {
	kills := 5
	seg := 16 << 20
	if testing.Short() {
		kills, seg = 2, 1<<20
	}
	c := newCluster(t, true)
	sockets := map[string]*net.UDPConn{}
	c.tweak = func(cfg *Config) { ownSocket(t, sockets, cfg) }
	edges := gridEdges(3, 3)
	c.build(edges...)
	c.waitConverged()

	received, srvErr := sinkService(t, c.nodes["g22"])
	conn, err := c.nodes["g00"].DialWith(ctxT(t, patience), "g22", "sink", DialOptions{RecordPath: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Minute))
	rc := conn.(*resumableConn)
	path := func() []string {
		if p, ok := rc.Current().(*trackedConn); ok {
			return p.Path()
		}
		return nil
	}

	// The writer sends one segment, then one more after each crash, so
	// that every crash finds bytes in flight or about to be.
	w := newSumWriter(conn)
	next := make(chan struct{})
	writeErr := make(chan error, 1)
	go func() {
		for k := 0; k <= kills; k++ {
			if k > 0 {
				<-next
			}
			if err := w.write(seg); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- conn.CloseWrite()
	}()
	stalls := newStallMeter(received)
	defer stalls.close()

	for k := range kills {
		waitFor(t, "the destination to receive half the segment", 2*time.Minute, func() bool {
			return received.Load() >= int64(k*seg+seg/2) && len(path()) > 2
		})
		p := path()
		victim := p[1+k%(len(p)-2)]
		stalls.take()
		killed := time.Now()
		sockets[victim].Close() // the relay's process dies
		select {
		case next <- struct{}{}:
		case err := <-writeErr: // the writer ended early: it waits for no next segment
			t.Fatalf("writer ended before crash %d: %v", k+1, err)
		}
		waitFor(t, "the circuit to run around "+victim, 2*time.Minute, func() bool {
			q := path()
			return len(q) > 0 && !slices.Contains(q, victim) && received.Load() >= int64((k+1)*seg)
		})
		t.Logf("crash %d of %s on path %v: longest stall %v, segment delivered %v after the crash, on %v",
			k+1, victim, p, stalls.take().Round(time.Millisecond), time.Since(killed).Round(time.Millisecond), path())

		// The crashed node restarts: a new process, same name, new socket.
		// Its neighbours refuse a newcomer under the name of a node they
		// still hold a link to and did not declare dead within the
		// handshake (duplicate node name), which a starved machine can
		// take longer than a handshake to do: the process restarts once
		// they have dropped their links to the crashed one.
		c.nodes[victim].Close()
		for _, e := range edges {
			if a, b, _ := strings.Cut(e, "-"); a == victim || b == victim {
				peer := a
				if a == victim {
					peer = b
				}
				waitFor(t, peer+" to drop its link to the crashed "+victim, patience, func() bool {
					return c.nodes[peer].link(victim) == nil
				})
			}
		}
		c.add(victim)
		for _, e := range edges {
			if a, b, _ := strings.Cut(e, "-"); a == victim || b == victim {
				c.link(a, b)
			}
		}
		c.waitConverged()
	}

	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	checkDigest(t, conn, w.sum(), received, srvErr)
	if got, want := received.Load(), int64((kills+1)*seg); got != want {
		t.Fatalf("destination received %d bytes, want %d", got, want)
	}
	if n := rc.Resumes(); n < int64(kills) {
		t.Errorf("%d resumes, want at least %d", n, kills)
	}
}
