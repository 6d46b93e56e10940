package links

import (
	"context"
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"
)

// BenchmarkStreamThroughput measures one circuit stream over a loopback
// link: bytes written by a, read and discarded by b.
func BenchmarkStreamThroughput(b *testing.B) {
	na, nb, la := pair(b)
	defer na.Close()
	lb := acceptedLink(b, nb, "a")
	go func() {
		s, err := lb.AcceptStream(context.Background())
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, s)
		s.Close()
	}()
	s, err := la.OpenStream(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := s.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	_ = s.Close()
}

// BenchmarkLinkSetup measures Dial: QUIC and TLS handshake plus hello.
// Every setup comes from one address, faster than the handshake gate
// lets one source prefix start them by default (32 a second after a burst
// of 64; refused beyond, CONNECTION_REFUSED), so the accepting node's
// gate admits a million a second from a prefix and from the node.
func BenchmarkLinkSetup(b *testing.B) {
	ca := testCA(b, "m")
	na := newNode(b, issue(b, ca, "a"), nil)
	nb := newNode(b, issue(b, ca, "b"), func(c *QUICConfig) { c.testHandshakeRate, c.testPrefixRate = 1e6, 1e6 })
	b.ResetTimer()
	for range b.N {
		l, err := na.Dial(context.Background(), nb.LocalAddr().String())
		if err != nil {
			b.Fatal(err)
		}
		_ = l.Close("again")
		<-l.Done()
	}
}

// BenchmarkOpenWithIdleStreams measures opening, using and closing one
// stream on a link that holds n idle streams: opened by a, their first
// byte read by b, then neither side reading, with nothing waiting. The
// stalled-reader reclaim runs on both links every probe interval
// meanwhile; its work must not grow with the idle streams.
func BenchmarkOpenWithIdleStreams(b *testing.B) {
	for _, n := range []int{0, 10_000, 50_000} {
		b.Run(fmt.Sprintf("idle=%d", n), func(b *testing.B) {
			benchOpenWithIdle(b, n)
		})
	}
}

func benchOpenWithIdle(b *testing.B, n int) {
	ca := testCA(b, "m")
	mod := func(c *QUICConfig) { c.MaxStreams = n + DefaultMaxStreams }
	na := newNode(b, issue(b, ca, "a"), mod)
	nb := newNode(b, issue(b, ca, "b"), mod)
	la := dial(b, na, nb)
	lb := acceptedLink(b, nb, "a")
	var held []Stream
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for range n {
			s, err := lb.AcceptStream(context.Background())
			if err != nil {
				return
			}
			var one [1]byte
			if _, err := io.ReadFull(s, one[:]); err != nil {
				return
			}
			held = append(held, s)
		}
		// Then echo one byte on each stream opened by the benchmark.
		for {
			s, err := lb.AcceptStream(context.Background())
			if err != nil {
				return
			}
			var one [1]byte
			if _, err := io.ReadFull(s, one[:]); err == nil {
				_, _ = s.Write(one[:])
			}
			_ = s.Close()
		}
	}()
	idle := make([]Stream, 0, n)
	for range n {
		s, err := la.OpenStream(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Write([]byte("i")); err != nil {
			b.Fatal(err)
		}
		idle = append(idle, s)
	}
	waitFor(b, "the idle streams accepted", time.Minute, func() bool { return lb.OpenStreams() >= n })
	// Let the reclaim count the idle streams as stalled.
	time.Sleep(2*DefaultReaderStall + DefaultProbeInterval)
	// Opens run 16 at a time so that the CPU, not the round trip, is the
	// limit: the reclaim's work then shows in the rate.
	b.SetParallelism(8)
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		one := []byte("x")
		for pb.Next() {
			s, err := la.OpenStream(context.Background())
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := s.Write(one); err != nil {
				b.Error(err)
				return
			}
			if _, err := io.ReadFull(s, one); err != nil {
				b.Error(err)
				return
			}
			_ = s.Close()
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	if la.OpenStreams() < n || lb.OpenStreams() < n {
		b.Fatalf("idle streams lost: a holds %d, b %d of %d", la.OpenStreams(), lb.OpenStreams(), n)
	}
	for _, s := range idle {
		s.Reset(0)
	}
	_ = na.Close()
	<-accepted
	for _, s := range held {
		s.Reset(0)
	}
}

// cpuTime is the CPU time this process used so far (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
