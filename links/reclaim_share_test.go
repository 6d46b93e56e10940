package links

import (
	"bytes"
	"context"
	"fmt"
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
	testReclaimBoundsShare(t, "haaa", 'a', 1, func(s Stream, from byte) {
		SetSource(s, ProvenSource(string(from)))
	})
}

// TestReclaimBoundsWhatOneNeighbourHolds is
// TestReclaimBoundsWhatOneSourceHolds with neighbour m's three streams
// each claiming a source and an entry of its own: none holds more than
// half the window, but m's do together, so the link resets one of them.
func TestReclaimBoundsWhatOneNeighbourHolds(t *testing.T) {
	i := 0
	testReclaimBoundsShare(t, "hmmm", 'm', 1, func(s Stream, from byte) {
		i++
		src := ClaimedSource(fmt.Sprint("x", i), []string{string(from)})
		SetNeighbour(s, string(from), src)
		SetSource(s, src)
	})
}

// TestReclaimBoundsOneNeighbourEntryHoldingTheMostFirst: all four streams
// come from neighbour r (a router), one each from entries h and b, two
// from entry a, each with a source of its own. r's hold the whole window,
// so the link resets two, both a's: the entry holding the most pays, not
// the others, however many sources it names.
func TestReclaimBoundsOneNeighbourEntryHoldingTheMostFirst(t *testing.T) {
	i := 0
	testReclaimBoundsShare(t, "haab", 'a', 2, func(s Stream, from byte) {
		i++
		SetNeighbour(s, "r", ClaimedSource(string(from), []string{"r"}))
		SetSource(s, ClaimedSource(fmt.Sprint("x", i), []string{string(from), "r"}))
	})
}

// testReclaimBoundsShare writes 64 KiB on a stream for each byte of
// froms, which name names by it, on a link of a 256 KiB window: the link
// must reset want of those from heavy and leave the others alone.
func testReclaimBoundsShare(t *testing.T, froms string, heavy byte, want int, name func(Stream, byte)) {
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
			name(s, first[0])
			got <- named{s, first[0]}
		}
	})

	chunk := bytes.Repeat([]byte("x"), 64<<10)
	var others, as []Stream
	for _, from := range []byte(froms) {
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
		if n.from == heavy {
			as = append(as, n.s)
		} else {
			others = append(others, n.s)
		}
	}
	waitFor(t, "the link to reset streams", 30*time.Second, func() bool { return b.StalledStreams() >= uint64(want) })
	// Some ticks more: the rest hold half the window, not more.
	time.Sleep(time.Second)
	if n := b.StalledStreams(); n != uint64(want) {
		t.Fatalf("%d streams reset, want %d (the rest hold no more than half the window)", n, want)
	}
	// What QUIC let in of each 64 KiB write: its window, less a byte.
	l := resets.list()
	for _, h := range l {
		if h < 60<<10 || h > 64<<10 {
			t.Fatalf("reset streams held %v, want each about 64 KiB", l)
		}
	}
	for _, s := range others {
		_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(s, chunk); err != nil {
			t.Fatalf("a stream not from %c, under its share, was reset: %v", heavy, err)
		}
	}
	var reset int
	for _, s := range as {
		_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(s, chunk); err != nil {
			reset++ // reset here: its reads fail
		}
	}
	if reset != want {
		t.Fatalf("%d of the streams from %c reset, want %d", reset, heavy, want)
	}
}
