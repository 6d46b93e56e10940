package simulate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

// A resumable circuit across a mesh whose every link drops 5 % of its
// packets (QUIC backend, virtual time) outlives the crash of the relay it
// runs through: the transfer completes with the right SHA-256 and neither
// application sees an error.
func TestResumeUnderLossRelayKilled(t *testing.T) {
	size := 16 << 20
	if testing.Short() {
		size = 2 << 20
	}
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c, err := NewCluster(Config{Backend: BackendQUIC, Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.AddNodes(ctx, "a", "b", "c", "d", "e"); err != nil {
			t.Fatal(err)
		}
		lossy := LinkParams{Latency: 5 * time.Millisecond, Loss: 0.05}
		for _, e := range [][2]string{{"a", "b"}, {"a", "c"}, {"b", "c"}, {"b", "d"}, {"c", "e"}, {"e", "d"}, {"b", "e"}} {
			if err := c.Link(ctx, e[0], e[1], lossy); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.WaitConverged(ctx); err != nil {
			t.Fatal(err)
		}

		// d reads to the end, noting the longest gap between reads once
		// the relay was killed, and answers with the SHA-256.
		lis, err := c.Node("d").Listen("sink")
		if err != nil {
			t.Fatal(err)
		}
		defer lis.Close()
		var (
			received atomic.Int64
			mu       sync.Mutex
			killedAt time.Time
			lastRead time.Time
			stall    time.Duration
		)
		srvErr := make(chan error, 1)
		go func() {
			conn, err := lis.Accept()
			if err != nil {
				srvErr <- err
				return
			}
			defer conn.Close()
			h := sha256.New()
			buf := make([]byte, 64<<10)
			for {
				n, err := conn.Read(buf)
				h.Write(buf[:n])
				now := time.Now()
				mu.Lock()
				if !killedAt.IsZero() {
					from := lastRead
					if from.Before(killedAt) {
						from = killedAt
					}
					stall = max(stall, now.Sub(from))
				}
				lastRead = now
				mu.Unlock()
				received.Add(int64(n))
				if err == io.EOF {
					break
				}
				if err != nil {
					srvErr <- err
					return
				}
			}
			_, err = conn.Write(h.Sum(nil))
			srvErr <- err
		}()

		conn, err := c.Node("a").DialWith(ctx, "d", "sink", node.DialOptions{RecordPath: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		path := conn.Path()
		if len(path) < 3 {
			t.Fatalf("path %v: want at least one relay", path)
		}
		relay := path[1]
		data := make([]byte, size)
		_, _ = mrand.NewChaCha8([32]byte{'l'}).Read(data)
		// The second half waits until the circuit was seen on its new
		// path, so that the circuit is still open to be looked at.
		rest := make(chan struct{})
		writeErr := make(chan error, 1)
		go func() {
			_, err := conn.Write(data[:size/2])
			if err == nil {
				<-rest
				_, err = conn.Write(data[size/2:])
			}
			if err == nil {
				err = conn.CloseWrite()
			}
			writeErr <- err
		}()
		for received.Load() < int64(size/4) {
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		killedAt = time.Now()
		mu.Unlock()
		if err := c.Kill(relay); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for slices.Contains(conn.Path(), relay) {
			if time.Now().After(deadline) {
				t.Fatalf("the circuit still runs on %v a minute after %s was killed", conn.Path(), relay)
			}
			time.Sleep(10 * time.Millisecond)
		}
		after := conn.Path()
		close(rest)
		if err := <-writeErr; err != nil {
			t.Fatalf("write: %v", err)
		}
		sum, err := io.ReadAll(conn)
		if err != nil {
			t.Fatalf("reading the digest: %v", err)
		}
		if want := sha256.Sum256(data); !bytes.Equal(sum, want[:]) {
			t.Fatalf("d's SHA-256 of %d bytes is %x, want %x", received.Load(), sum, want)
		}
		if err := <-srvErr; err != nil {
			t.Fatalf("destination: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Logf("%d MiB over links losing 5%% of packets, relay %s of %v killed: longest stall at d %v (virtual), done on %v %v after the kill",
			size>>20, relay, path, stall, fmt.Sprint(after), time.Since(killedAt))
	})
}
