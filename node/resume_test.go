package node

import (
	"crypto/sha256"
	mrand "math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"go.opentelemetry.io/otel/codes"
)

// TestResumeDiamondRelayCrash sends a transfer from a to d through b, the
// cheaper relay of a diamond a–{b,c}–d on QUIC, and crashes b (its socket
// closes: no goodbye) half way. The circuit takes the path through c: the
// destination reads every byte once and in order (its SHA-256 comes back
// right), and neither application sees an error.
func TestResumeDiamondRelayCrash(t *testing.T) {
	size := 256 << 20
	if testing.Short() {
		size = 8 << 20
	}
	c, rec := tracedCluster(t)
	sockets := buildDiamond(t, c)

	received, srvErr := sinkService(t, c.nodes["d"])

	data := make([]byte, 1<<20)
	rng := mrand.NewChaCha8([32]byte{'d'})
	want := sha256.New()
	a := c.nodes["a"]
	conn, err := a.DialWith(ctxT(t, 10*time.Second), "d", "sink", DialOptions{RecordPath: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Minute))
	write := func(n int) {
		t.Helper()
		for sent := 0; sent < n; sent += len(data) {
			rng.Read(data)
			want.Write(data)
			if _, err := conn.Write(data); err != nil {
				t.Fatalf("write after %d bytes: %v", sent, err)
			}
		}
	}
	write(size / 2)
	waitFor(t, "d to receive a quarter", 60*time.Second, func() bool { return received.Load() >= int64(size/4) })
	killed := time.Now()
	at := received.Load()
	sockets["b"].Close() // b's process dies
	stall := watchStall(received, at, killed)
	write(size - size/2)
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	checkDigest(t, conn, want.Sum(nil), received, srvErr)
	t.Logf("longest stall at d after b crashed: %v", stall())
	if got := received.Load(); got != int64(size) {
		t.Fatalf("d received %d bytes, want %d", got, size)
	}
	rc := conn.(*resumableConn)
	if p := rc.Current(); p != nil {
		if got := p.(*trackedConn).Path(); len(got) != 3 || got[1] != "c" {
			t.Errorf("path after the crash %v, want [a c d]", got)
		}
	}
	if n := counterValue(a.metrics.resume.resumes.WithLabelValues("dial")); n < 1 {
		t.Errorf("resumes counted at a: %v, want at least 1", n)
	}
	if n := counterValue(c.nodes["d"].metrics.resume.resumes.WithLabelValues("accept")); n < 1 {
		t.Errorf("resumes counted at d: %v, want at least 1", n)
	}
	t.Logf("%d MiB through a crash of the relay in %v", size>>20, time.Since(killed))

	// The trace shows both paths: the first one's dial span failed with
	// the crash, the one that took over carries the resumed event.
	conn.Close()
	waitFor(t, "the paths' dial spans to end", 20*time.Second, func() bool {
		failed, resumed := false, false
		for _, s := range rec.Ended() {
			if s.Name() != spanDial {
				continue
			}
			for _, e := range s.Events() {
				if e.Name == eventResumed {
					resumed = true
				}
			}
			failed = failed || s.Status().Code == codes.Error
		}
		return failed && resumed
	})
}

// watchStall watches received from at (its value at since) until the
// function it returns is called, which returns the longest time received
// stood still meanwhile.
func watchStall(received *atomic.Int64, at int64, since time.Time) func() time.Duration {
	stallc := make(chan time.Duration, 1)
	done := make(chan struct{})
	go func() {
		var longest time.Duration
		last, lastAt := at, since
		for {
			select {
			case <-done:
				stallc <- longest
				return
			case <-time.After(time.Millisecond):
			}
			if r := received.Load(); r != last {
				last, lastAt = r, time.Now()
			} else {
				longest = max(longest, time.Since(lastAt))
			}
		}
	}()
	return func() time.Duration {
		close(done)
		return <-stallc
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
