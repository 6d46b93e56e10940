package node

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// resumeAttacker is a peer with a valid certificate that fills the
// buffers a destination keeps for its resumable circuits: it opens
// circuits to the destination's echo service and writes without ever
// reading, so the echo's replies pile up in the destination's retransmit
// buffer (nothing acknowledges them) and, once the echo blocks, the
// requests in its receive queue: up to a window each way per circuit.
// A circuit the destination resets is dialled again.
type resumeAttacker struct {
	from     *Node
	to       string
	circuits int

	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error // why circuits ended
	opened atomic.Int64
}

func startResumeAttacker(t *testing.T, from *Node, to string, circuits int) *resumeAttacker {
	a := &resumeAttacker{from: from, to: to, circuits: circuits, stop: make(chan struct{})}
	for range circuits {
		a.wg.Add(1)
		go a.run(t)
	}
	t.Cleanup(a.halt)
	return a
}

func (a *resumeAttacker) halt() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	a.wg.Wait()
}

func (a *resumeAttacker) stopped() bool {
	select {
	case <-a.stop:
		return true
	default:
		return false
	}
}

func (a *resumeAttacker) run(t *testing.T) {
	defer a.wg.Done()
	chunk := make([]byte, 256<<10)
	for !a.stopped() {
		conn, err := a.from.Dial(ctxT(t, 10*time.Second), a.to, EchoService)
		if err != nil {
			if a.stopped() {
				return
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if _, ok := conn.(*resumableConn); !ok {
			conn.Close()
			t.Errorf("the attacker's circuit is not resumable: %T", conn)
			return
		}
		a.opened.Add(1)
		for {
			if a.stopped() {
				conn.Close()
				return
			}
			conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := conn.Write(chunk); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					continue // full: keep it full
				}
				a.mu.Lock()
				a.errs = append(a.errs, err)
				a.mu.Unlock()
				conn.Close()
				break
			}
		}
	}
}

func (a *resumeAttacker) ended() []error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]error(nil), a.errs...)
}

// echoRoundTrip sends size pseudo-random bytes through a resumable
// circuit to to's echo service and checks they all come back in order.
func echoRoundTrip(t *testing.T, from *Node, to string, size int) {
	t.Helper()
	conn, err := from.Dial(ctxT(t, 10*time.Second), to, EchoService)
	if err != nil {
		t.Fatalf("honest dial during the attack: %v", err)
	}
	defer conn.Close()
	if _, ok := conn.(*resumableConn); !ok {
		t.Fatalf("the honest circuit is not resumable: %T", conn)
	}
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	data := make([]byte, size)
	mrand.NewChaCha8([32]byte{'h'}).Read(data)
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(data)
		if err == nil {
			err = conn.(interface{ CloseWrite() error }).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("honest read during the attack after %d bytes: %v", len(got), err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("honest write during the attack: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("honest echo: %d bytes back (SHA-256 %x), want %d (%x)", len(got), sha256.Sum256(got), size, sha256.Sum256(data))
	}
}

// budgetPeak samples the budget's usage until stop, keeping the most the
// node and any one source held.
type budgetPeak struct {
	mu          sync.Mutex
	node, src   int
	done        chan struct{}
	wg          sync.WaitGroup
	over, total int // samples over the budget, samples
}

func watchBudget(b *resumeBudget) *budgetPeak {
	p := &budgetPeak{done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			u := b.usage()
			p.mu.Lock()
			p.node = max(p.node, u.bytes)
			for _, v := range u.perSource {
				p.src = max(p.src, v)
			}
			p.mu.Unlock()
			select {
			case <-p.done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return p
}

func (p *budgetPeak) end() (node, src int) {
	close(p.done)
	p.wg.Wait()
	return p.node, p.src
}

// TestAttackResumeBuffers: three certified peers each keep three
// resumable circuits to d full (a window each way, 8 MiB a circuit, 72 MiB
// in all) while an honest peer h sends 4 MiB through d's echo and back.
// d's resumable buffers stay within its budget (24 MiB, 12 MiB a source),
// the attackers' circuits are reset (they see ErrStalled, d counts the
// drops), h's circuit opens resumable and comes back intact, and once the
// attack ends d's account is back to zero.
func TestAttackResumeBuffers(t *testing.T) {
	const budget, perSource = 24 << 20, 12 << 20
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "d" {
			cfg.Limits.ResumeBuffer = budget
			cfg.Limits.ResumeBufferPerSource = perSource
		}
	}
	c.build("m1-d", "m2-d", "m3-d", "h-d")
	for _, n := range []string{"m1", "m2", "m3", "h"} {
		c.waitRoute(n, "d", 1)
	}
	d := c.nodes["d"]
	peak := watchBudget(d.rbudget)
	var attackers []*resumeAttacker
	for _, m := range []string{"m1", "m2", "m3"} {
		attackers = append(attackers, startResumeAttacker(t, c.nodes[m], "d", 3))
	}
	drops := func() float64 {
		var sum float64
		for _, r := range []string{dropSourceShare, dropNodeBudget} {
			sum += counterValue(d.rbudget.drops.WithLabelValues(r))
		}
		return sum
	}
	waitFor(t, "the attack to reach d's budget", 2*time.Minute, func() bool { return drops() >= 3 })

	echoRoundTrip(t, c.nodes["h"], "d", 4<<20)

	for _, a := range attackers {
		a.halt()
	}
	nodePeak, srcPeak := peak.end()
	t.Logf("d's resumable buffers: peak %d MiB (budget %d MiB), peak of one source %d MiB (share %d MiB); drops: source share %v, node budget %v",
		nodePeak>>20, budget>>20, srcPeak>>20, perSource>>20,
		counterValue(d.rbudget.drops.WithLabelValues(dropSourceShare)), counterValue(d.rbudget.drops.WithLabelValues(dropNodeBudget)))
	if nodePeak > budget {
		t.Errorf("d's resumable circuits held %d bytes, over the budget of %d", nodePeak, budget)
	}
	if srcPeak > perSource {
		t.Errorf("one source's resumable circuits held %d bytes at d, over its share of %d", srcPeak, perSource)
	}
	stalled := 0
	for _, a := range attackers {
		for _, err := range a.ended() {
			if errors.Is(err, circuit.ErrStalled) {
				stalled++
			}
		}
	}
	if stalled == 0 {
		t.Errorf("no attacker circuit was reset with ErrStalled")
	}
	waitFor(t, "d's account to return to zero", 30*time.Second, func() bool {
		u := d.rbudget.usage()
		return u.bytes == 0 && u.parked == 0 && u.circuits == 0
	})
}

var _ net.Conn = (*resumableConn)(nil)
