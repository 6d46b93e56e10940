package node

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// stuckStream is a relay's stream that, once stuck, drops what the relay
// writes to it: the circuit stays open, its links stay up, and nothing
// moves, as through a relay that stopped forwarding.
type stuckStream struct {
	links.Stream
	stuck *atomic.Bool
}

func (s stuckStream) Write(b []byte) (int, error) {
	if s.stuck.Load() {
		return len(b), nil
	}
	return s.Stream.Write(b)
}

// b, the relay a circuit from a to d goes through on a diamond a–{b,c}–d,
// stops forwarding the circuits it relays while keeping them and its
// links up, so routing keeps preferring it. The source finds that nothing
// arrives, resumes through the other next hop (c), and the transfer
// completes intact with no error at either application.
func TestResumeAroundRelayThatStopsForwarding(t *testing.T) {
	size := 64 << 20
	if testing.Short() {
		size = 8 << 20
	}
	var stuck atomic.Bool
	c := newCluster(t, true)
	buildDiamondWith(t, c, func(cfg *Config) {
		if cfg.Name == "b" {
			cfg.hooks = &hooks{relay: func(in, out links.Stream) (links.Stream, links.Stream) {
				return stuckStream{in, &stuck}, stuckStream{out, &stuck}
			}}
		}
	})

	a := c.nodes["a"]
	conn, w, received, srvErr := sendAlongABD(t, c, size/2, size/4)
	defer conn.Close()
	stalls := newStallMeter(received)
	defer stalls.close()
	stuck.Store(true)
	stalls.take()
	stopped := time.Now()
	// The rest is written once the circuit runs through c: checked while
	// it is still open.
	waitFor(t, "the circuit to resume through c", 60*time.Second, func() bool {
		return fmt.Sprint(conn.Path()) == "[a c d]"
	})
	if err := w.write(size - size/2); err != nil {
		t.Fatalf("write after b stopped forwarding: %v", err)
	}
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	checkDigest(t, conn, w.sum(), received, srvErr)
	t.Logf("%d MiB through a relay that stopped forwarding: longest stall at d %v, done %v after it stopped",
		size>>20, stalls.take().Round(time.Millisecond), time.Since(stopped).Round(time.Millisecond))
	if n := counterValue(a.metrics.resume.resumes.WithLabelValues("dial")); n < 1 {
		t.Errorf("resumes counted at a: %v, want at least 1", n)
	}
}

// sendAlongABD dials d's "sink" from a, checks that the circuit's path is
// [a b d], writes n bytes and waits until d has received at least half of
// them (waitFor on half).
func sendAlongABD(t *testing.T, c *cluster, n, half int) (Conn, *sumWriter, *atomic.Int64, chan error) {
	t.Helper()
	received, srvErr := sinkService(t, c.nodes["d"])
	// A hang guard: beside busy loops (load average 30) the open took
	// longer than 10 s.
	conn, err := c.nodes["a"].DialWith(ctxT(t, patience), "d", "sink", DialOptions{RecordPath: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(conn.Path()); got != "[a b d]" {
		conn.Close()
		t.Fatalf("path %s, want [a b d]", got)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Minute))
	w := newSumWriter(conn)
	if err := w.write(n); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	waitFor(t, fmt.Sprintf("d to receive %d bytes", half), 60*time.Second, func() bool { return received.Load() >= int64(half) })
	return conn, w, received, srvErr
}

// sinkService serves "sink" on n: it reads a circuit to its end, counting
// the bytes in received, and answers with their SHA-256.
func sinkService(t *testing.T, n *Node) (*atomic.Int64, chan error) {
	var received atomic.Int64
	srvErr := make(chan error, 1)
	serve(t, n, "sink", func(conn io.ReadWriteCloser) {
		h := sha256.New()
		buf := make([]byte, 64<<10)
		for {
			k, err := conn.Read(buf)
			h.Write(buf[:k])
			received.Add(int64(k))
			if err == io.EOF {
				break
			}
			if err != nil {
				srvErr <- err
				return
			}
		}
		_, err := conn.Write(h.Sum(nil))
		srvErr <- err
	})
	return &received, srvErr
}

// checkDigest reads the sink's answer on conn (after the writer's
// half-close) and checks it is want, and that the sink saw no error.
func checkDigest(t *testing.T, conn io.Reader, want []byte, received *atomic.Int64, srvErr chan error) {
	t.Helper()
	sum, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("reading the digest: %v", err)
	}
	if !bytes.Equal(sum, want) {
		t.Fatalf("the destination's SHA-256 of %d bytes is %x, want %x", received.Load(), sum, want)
	}
	if err := <-srvErr; err != nil {
		t.Fatalf("destination: %v", err)
	}
}

// sumWriter writes pseudo-random bytes to a circuit, keeping their
// SHA-256.
type sumWriter struct {
	w    io.Writer
	rng  *mrand.ChaCha8
	h    interface{ Sum([]byte) []byte }
	hw   io.Writer
	data []byte
}

func newSumWriter(w io.Writer) *sumWriter {
	h := sha256.New()
	return &sumWriter{w: w, rng: mrand.NewChaCha8([32]byte{'s'}), h: h, hw: h, data: make([]byte, 256<<10)}
}

// write writes n bytes (a multiple of 256 KiB, or rounded up to one).
func (s *sumWriter) write(n int) error {
	for sent := 0; sent < n; sent += len(s.data) {
		s.rng.Read(s.data)
		s.hw.Write(s.data)
		if _, err := s.w.Write(s.data); err != nil {
			return fmt.Errorf("write after %d bytes: %w", sent, err)
		}
	}
	return nil
}

func (s *sumWriter) sum() []byte { return s.h.Sum(nil) }
