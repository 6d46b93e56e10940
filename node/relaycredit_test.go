package node

import (
	"context"
	"io"
	"runtime"
	"testing"
	"time"
)

// plainKinds are the circuits that are not resumable: end-to-end security
// off, and sealed with NoResume.
var plainKinds = []struct {
	name     string
	e2e      E2E
	noResume bool
}{{"clear", E2EOff, false}, {"noresume", E2EOn, true}}

// Plain circuits (end-to-end security off, or NoResume) opened one after
// another through a relay, each echoing a byte and closed by the source
// before the destination's end came back, keep opening past the per-link
// circuit limit: the relay gives each circuit's stream back to the link.
// The source's Close stops the relay's writing to it (STOP_SENDING) while
// the relay waits on the destination; the relay's stream from the source
// then never completed in QUIC, so the source's link kept none of its
// credit back and, MaxCircuitsPerLink circuits later, every open on it
// waited for good (with the default 4,096, a link's 4,097th plain circuit).
func TestRelayedPlainCircuitsGiveBackTheirStreams(t *testing.T) {
	const limit = 16
	for _, k := range plainKinds {
		t.Run(k.name, func(t *testing.T) {
			c := newCluster(t, true)
			c.tweak = func(cfg *Config) {
				cfg.E2E = k.e2e
				cfg.Limits.MaxCircuitsPerLink = limit
			}
			c.build("a-r", "r-b")
			c.waitRoute("a", "b", 2)
			for i := range 3 * limit {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := openEchoCircuit(ctx, c.node("a"), "b", k.noResume)()
				cancel()
				if err != nil {
					t.Fatalf("circuit %d of %d through r (a link's limit is %d): %v", i+1, 3*limit, limit, err)
				}
			}
		})
	}
}

// The same when the destination ends first: its service answers and
// closes without waiting for the source's end, stopping the relay's
// writing to it while the relay waits on the source. The relay kept each
// such circuit's stream to the destination in QUIC for as long as the
// link lasted: its heap grew by about 2.3 KB a circuit (2,000 circuits
// after 500, e2e off), against about 50 bytes once the stream is closed.
func TestRelayedPlainCircuitsEndedByTheDestinationLeaveNoStreams(t *testing.T) {
	const warm, n, perCircuit = 300, 1500, 1000 // bytes of heap a circuit may leave
	for _, k := range plainKinds {
		t.Run(k.name, func(t *testing.T) {
			c := newCluster(t, true)
			c.tweak = func(cfg *Config) { cfg.E2E = k.e2e }
			c.build("a-r", "r-b")
			c.waitRoute("a", "b", 2)
			l, err := c.node("b").Listen("answer")
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for {
					conn, err := l.Accept()
					if err != nil {
						return
					}
					go func() {
						defer conn.Close() // without reading the source's end
						b := make([]byte, 1)
						if _, err := io.ReadFull(conn, b); err == nil {
							conn.Write(b)
						}
					}()
				}
			}()
			open := func(count int) {
				for i := range count {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					conn, err := c.node("a").DialWith(ctx, "b", "answer", DialOptions{Early: true, NoResume: k.noResume})
					cancel()
					if err == nil {
						_, err = conn.Write([]byte{1})
						if err == nil {
							_, err = io.ReadAll(conn)
						}
						conn.Close()
					}
					if err != nil {
						t.Fatalf("circuit %d: %v", i+1, err)
					}
				}
			}
			open(warm)
			before := settledHeap()
			open(n)
			grown := (float64(settledHeap()) - float64(before)) / n
			t.Logf("heap grew %.0f bytes a circuit over %d circuits", grown, n)
			if grown > perCircuit {
				t.Fatalf("the process's heap grew %.0f bytes a circuit over %d circuits closed by their destination (at most %d)", grown, n, perCircuit)
			}
		})
	}
}

// settledHeap is the heap in use once the circuits' last packets went and
// two collections ran.
func settledHeap() uint64 {
	time.Sleep(300 * time.Millisecond)
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
