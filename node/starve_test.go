package node

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/internal/cpuquota"
	"github.com/circuitmesh/circuitmesh/links"
)

// Under starveQuota per starvePeriod, beside a goroutine that computes
// without pause, this process gets a tenth of a core or less: on the
// 2-core machine the figures in docs/DESIGN.md come from, a fixed piece
// of work took 7–12 times as long as without the quota (starve logs the
// ratio it measured).
const (
	starveQuota  = 20 * time.Millisecond
	starvePeriod = 100 * time.Millisecond
)

// starve moves this test process under the CPU quota, with a goroutine
// that computes without pause so that the quota is always used up, until
// the test ends. It logs how much slower a fixed piece of work ran. It
// skips (saying why) where cpuquota cannot starve the process.
func starve(t *testing.T) {
	t.Helper()
	work := func() time.Duration {
		buf := make([]byte, 1<<20)
		began := time.Now()
		for range 160 {
			sha256.Sum256(buf)
		}
		return time.Since(began)
	}
	before := min(work(), work(), work())
	cpuquota.Under(t, starveQuota, starvePeriod)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for x := 0; !stop.Load(); x++ {
		}
	})
	t.Cleanup(func() { stop.Store(true); wg.Wait() })
	after := work()
	t.Logf("under %v of CPU per %v beside a busy loop, 160 MiB of SHA-256 took %v, %.1f× the %v without the quota",
		starveQuota, starvePeriod, after.Round(time.Millisecond), float64(after)/float64(before), before.Round(time.Millisecond))
}

// TestStarvedMeshKeepsItsPromises runs small static meshes of real QUIC
// nodes in a process starved of CPU about tenfold (starve) and checks
// that what the README promises still holds, only slower: sealed circuits
// open directly and over one to three relays, in the full (XX), the
// one-message (IK) and the resumed handshake; a few MiB cross three
// relays intact, and 2 MiB closed right after the last write arrive
// whole; a resumable circuit survives the death of its relay; a
// new circuit takes the other path; refusals are typed; and Close leaves
// no goroutine behind. With -short it runs the cheaper part: a line of
// three, the opens, the refusals and Close. Needs root and the cgroup v1
// cpu controller.
func TestStarvedMeshKeepsItsPromises(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	starve(t)

	// A line a-b-c-d-e (a-b-c with -short): the last node is three relays
	// from a. b counts the handshake modes of the circuits it relays from
	// a, and the last node takes at most 2 circuits per source.
	names := []string{"a", "b", "c", "d", "e"}
	if testing.Short() {
		names = names[:3]
	}
	last := names[len(names)-1]
	modes := &modeCount{}
	line := newCluster(t, true)
	line.tweak = func(cfg *Config) {
		switch cfg.Name {
		case "b":
			cfg.hooks = &hooks{relay: func(in, out links.Stream) (links.Stream, links.Stream) {
				return &modeSpy{Stream: in, modes: modes}, out
			}}
		case last:
			cfg.Limits.MaxCircuitsPerSource = 2
		}
	}
	began := time.Now()
	for i := 1; i < len(names); i++ {
		line.link(names[i-1], names[i])
	}
	line.waitConverged()
	t.Logf("line of %d linked and converged in %v", len(names), time.Since(began).Round(time.Millisecond))
	a := line.nodes["a"]
	for _, name := range names[1:] {
		serve(t, line.nodes[name], "svc", echoHandler)
	}
	for _, name := range names[1:] {
		for i, mode := range []string{"full (XX)", "one-message (IK)", "resumed"} {
			began := time.Now()
			if err := roundTrip(t, a, name, "svc", []byte("hello "+name)); err != nil {
				t.Fatalf("%s open %d to %s: %v", mode, i+1, name, err)
			}
			t.Logf("%s open to %s and round trip: %v", mode, name, time.Since(began).Round(time.Millisecond))
		}
	}
	modes.mu.Lock()
	full, one, resumed := modes.full, modes.one, modes.resumed
	modes.mu.Unlock()
	if relayed := len(names) - 2; full != relayed || one != relayed || resumed != relayed {
		t.Errorf("b relayed %d full, %d one-message and %d resumed first messages, want %d of each", full, one, resumed, relayed)
	}

	if !testing.Short() {
		began = time.Now()
		received, srvErr := sinkService(t, line.nodes[last])
		conn, err := a.Dial(ctxT(t, patience), last, "sink")
		if err != nil {
			t.Fatalf("dial the sink three relays away: %v", err)
		}
		w := newSumWriter(conn)
		if err := w.write(4 << 20); err != nil {
			t.Fatalf("write 4 MiB three relays away: %v", err)
		}
		conn.(Conn).CloseWrite()
		checkDigest(t, conn, w.sum(), received, srvErr)
		conn.Close()
		t.Logf("4 MiB over three relays in %v", time.Since(began).Round(time.Millisecond))

		// A Close right after the last Write still delivers every byte
		// and then the end, resumable or not (a sealed circuit's end
		// record has closeFlushTimeout to leave).
		const size = 2 << 20
		counted := make(chan error, 1)
		serve(t, line.nodes[last], "count", func(c io.ReadWriteCloser) {
			k, err := io.Copy(io.Discard, c)
			if err == nil && k != size {
				err = fmt.Errorf("read %d bytes and the end, want %d", k, size)
			}
			counted <- err
		})
		for _, noResume := range []bool{false, true} {
			conn, err := a.DialWith(ctxT(t, patience), last, "count", DialOptions{NoResume: noResume})
			if err != nil {
				t.Fatal(err)
			}
			if err := newSumWriter(conn).write(size); err != nil {
				t.Fatalf("write %d bytes (NoResume %v): %v", size, noResume, err)
			}
			conn.Close()
			select {
			case err := <-counted:
				if err != nil {
					t.Errorf("closed right after its last write (NoResume %v), the destination: %v", noResume, err)
				}
			case <-time.After(patience):
				t.Fatalf("closed right after its last write (NoResume %v), the destination never read the end", noResume)
			}
		}
	}

	t.Run("refusals", func(t *testing.T) {
		if _, err := a.Dial(ctxT(t, patience), "nobody", "svc"); !errors.Is(err, circuit.ErrNoRoute) {
			t.Errorf("dial a node nobody announced: %v, want no route", err)
		}
		if _, err := a.Dial(ctxT(t, patience), last, "nope"); !errors.Is(err, circuit.ErrNoService) {
			t.Errorf("dial an unknown service at %s: %v, want no such service", last, err)
		}
		serve(t, line.nodes[last], "hold", func(conn io.ReadWriteCloser) { io.Copy(io.Discard, conn) })
		for range 2 {
			conn, err := a.Dial(ctxT(t, patience), last, "hold")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
		}
		dst := line.nodes[last]
		waitFor(t, last+" to count both circuits against a", patience, func() bool {
			dst.limits.mu.Lock()
			defer dst.limits.mu.Unlock()
			return dst.limits.perSrc[links.ProvenSource("a")] == 2
		})
		if _, err := a.Dial(ctxT(t, patience), last, "hold"); !errors.Is(err, circuit.ErrOverloaded) {
			t.Errorf("a third circuit beyond %s's limit of 2 per source: %v, want overloaded", last, err)
		}
	})

	t.Run("relay death", func(t *testing.T) {
		if testing.Short() {
			t.Skip("slow: a transfer across a relay's death on a starved CPU")
		}
		d := newCluster(t, true)
		sockets := buildDiamond(t, d)
		received, srvErr := sinkService(t, d.nodes["d"])
		conn, err := d.nodes["a"].Dial(ctxT(t, patience), "d", "sink")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		w := newSumWriter(conn)
		if err := w.write(1 << 20); err != nil {
			t.Fatalf("write the first MiB: %v", err)
		}
		waitFor(t, "d to receive the first half MiB", patience, func() bool { return received.Load() >= 512<<10 })
		killed := time.Now()
		stall := watchStall(received, received.Load(), killed)
		sockets["b"].Close() // b's process dies: no goodbye
		if err := w.write(1 << 20); err != nil {
			t.Fatalf("write the second MiB after b died: %v", err)
		}
		conn.(Conn).CloseWrite()
		checkDigest(t, conn, w.sum(), received, srvErr)
		t.Logf("the resumable circuit carried 2 MiB across b's death, %v after it; d received nothing for %v at most",
			time.Since(killed).Round(time.Millisecond), stall().Round(time.Millisecond))
		fresh, err := d.nodes["a"].DialWith(ctxT(t, patience), "d", "sink", DialOptions{RecordPath: true, NoResume: true})
		if err != nil {
			t.Fatalf("a new circuit after b died: %v", err)
		}
		defer fresh.Close()
		if got := fmt.Sprint(fresh.Path()); got != "[a c d]" {
			t.Errorf("new circuit's path %s, want [a c d]", got)
		}
		conn.Close()
		fresh.Close()
		d.closeAll()
	})

	line.closeAll()
	waitFor(t, "every goroutine of the closed nodes to end", patience, func() bool {
		return goleak.Find(append(leakIgnores, ignore,
			goleak.IgnoreAnyFunction("github.com/circuitmesh/circuitmesh/node.starve.func2"))...) == nil
	})
}
