package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"
)

// bulkStream is the stream of size pseudo-random bytes a bulk server
// sends for seed.
func bulkStream(seed uint64, size int) io.Reader {
	var key [32]byte
	binary.BigEndian.PutUint64(key[:], seed)
	return io.LimitReader(mrand.NewChaCha8(key), int64(size))
}

// serveSeeded publishes service on n: it answers each circuit with the
// bulkStream of size bytes of the 8-byte seed it reads first.
func serveSeeded(t *testing.T, n *Node, service string, size int) {
	serve(t, n, service, func(c io.ReadWriteCloser) {
		var seed [8]byte
		if _, err := io.ReadFull(c, seed[:]); err != nil {
			t.Errorf("%s: reading the seed: %v", service, err)
			return
		}
		if _, err := io.Copy(c, bulkStream(binary.BigEndian.Uint64(seed[:]), size)); err != nil {
			t.Errorf("%s: %v", service, err)
		}
	})
}

// Parallel downloads from one source, through a relay, whose full windows
// are several times the source's share at the destination all complete
// intact: the destination's Writes wait for room in the share (the
// circuits' retransmit buffers) instead of the circuits being reset, and
// nothing counts a drop.
func TestResumeBudgetHoldsWritesBack(t *testing.T) {
	const circuits = 6
	size := 12 << 20
	if testing.Short() {
		size = 8 << 20
	}
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "d" {
			cfg.Limits.ResumeBuffer = 4 * MinResumeBuffer
			cfg.Limits.ResumeBufferPerSource = MinResumeBuffer
		}
	}
	c.build("s-r", "r-d")
	c.waitRoute("s", "d", 2)
	d := c.nodes["d"]
	serveSeeded(t, d, "download", size)
	peak := watchBudget(d.rbudget)

	var wg sync.WaitGroup
	for i := range circuits {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := c.nodes["s"].Dial(ctxT(t, 10*time.Second), "d", "download")
			if err != nil {
				t.Errorf("dial %d: %v", i, err)
				return
			}
			defer conn.Close()
			if _, ok := conn.(*resumableConn); !ok {
				t.Errorf("circuit %d is not resumable: %T", i, conn)
				return
			}
			conn.SetDeadline(time.Now().Add(time.Minute))
			var seed [8]byte
			binary.BigEndian.PutUint64(seed[:], uint64(i+1))
			if _, err := conn.Write(seed[:]); err != nil {
				t.Errorf("circuit %d: writing the seed: %v", i, err)
				return
			}
			got, want := sha256.New(), sha256.New()
			n, err := io.Copy(got, conn)
			if err != nil {
				t.Errorf("circuit %d: after %d of %d bytes: %v", i, n, size, err)
				return
			}
			io.Copy(want, bulkStream(uint64(i+1), size))
			if n != int64(size) || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
				t.Errorf("circuit %d: %d bytes, want %d, or their checksum differs", i, n, size)
			}
		}()
	}
	wg.Wait()
	nodePeak, srcPeak := peak.end()
	t.Logf("d's resumable buffers: peak %d KiB, of s %d KiB (share %d KiB)", nodePeak>>10, srcPeak>>10, MinResumeBuffer>>10)
	for _, r := range []string{dropSourceShare, dropNodeBudget} {
		if v := counterValue(d.rbudget.drops.WithLabelValues(r)); v != 0 {
			t.Errorf("%s drops: %v, want none", r, v)
		}
	}
	waitFor(t, "d's account to return to zero", 30*time.Second, func() bool {
		u := d.rbudget.usage()
		return u.bytes == 0 && u.circuits == 0
	})
}
