package links

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"
)

// TestReclaimBoundsWhatOneSourceHolds: readers that never stall (ReaderStall
// an hour) hold what arrives unread: three streams of source "a" (64 KiB
// each) and one of "h". a's hold more than half the 256 KiB link window,
// so the link resets the fullest of them, one, and leaves a's other two
// (half the window) and h's alone: h's reads its 64 KiB.
func TestReclaimBoundsWhatOneSourceHolds(t *testing.T) {
	ca := testCA(t, "m")
	var resets resetLog
	mod := func(c *QUICConfig) {
		c.MaxStreamWindow = 64 << 10
		c.LinkWindow = 256 << 10
		c.ReaderStall = time.Hour
		c.OnStalled = resets.note
	}
	a := newNode(t, issue(t, ca, "a"), mod)
	b := newNode(t, issue(t, ca, "b"), mod)
	la := dial(t, a, b)
	lb := acceptedLink(t, b, "a")

	// b names each stream's source by its first byte and reads nothing
	// more until the test says so.
	type named struct {
		s    Stream
		from byte
	}
	got := make(chan named, 4)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer a.Close()
	wg.Go(func() {
		for {
			s, err := lb.AcceptStream(context.Background())
			if err != nil {
				return
			}
			var first [1]byte
			if _, err := io.ReadFull(s, first[:]); err != nil {
				return
			}
			SetSource(s, ProvenSource(string(first[:])))
			got <- named{s, first[0]}
		}
	})

	chunk := bytes.Repeat([]byte("x"), 64<<10)
	var hs Stream
	var as []Stream
	for _, from := range []byte("haaa") {
		s, err := la.OpenStream(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Reset(0)
		_ = s.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := s.Write(append([]byte{from}, chunk...)); err != nil {
			t.Fatal(err)
		}
		n := <-got
		defer n.s.Reset(0)
		if n.from == 'h' {
			hs = n.s
		} else {
			as = append(as, n.s)
		}
	}
	waitFor(t, "the link to reset one of a's streams", 30*time.Second, func() bool { return b.StalledStreams() >= 1 })
	// Some ticks more: a's two others hold half the window, not more.
	time.Sleep(time.Second)
	if n := b.StalledStreams(); n != 1 {
		t.Fatalf("%d streams reset, want 1 (a's others hold no more than half the window)", n)
	}
	// What QUIC let in of each 64 KiB write: its window, less a byte.
	if l := resets.list(); len(l) != 1 || l[0] < 60<<10 || l[0] > 64<<10 {
		t.Fatalf("reset streams held %v, want one of about 64 KiB", l)
	}
	_ = hs.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(hs, chunk); err != nil {
		t.Fatalf("h's stream, its source under its share, was reset: %v", err)
	}
	var reset int
	for _, s := range as {
		_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(s, chunk); err != nil {
			reset++ // reset here: its reads fail
		}
	}
	if reset != 1 {
		t.Fatalf("%d of a's streams reset, want 1", reset)
	}
}
