package links

import (
	"context"
	"io"
	"testing"
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
func BenchmarkLinkSetup(b *testing.B) {
	ca := testCA(b, "m")
	na := newNode(b, issue(b, ca, "a"), nil)
	nb := newNode(b, issue(b, ca, "b"), nil)
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
