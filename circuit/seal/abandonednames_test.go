package seal

import (
	"errors"
	"testing"
	"time"
)

// A flight the destination recorded but had not yet marked taken when a
// full handshake named it (the two opens read at once) is not taken
// after: Take refuses it, and only the open made again goes ahead.
func TestAbandonedBeforeTakeIsNotTaken(t *testing.T) {
	_, src, dst, rec := resumedPair(t)
	pro := Prologue("d", "s", "svc", 0)
	now := time.Now()
	strikes := NewStrikes(0, 0, now.Add(-time.Minute))
	ini, m1 := oneMessageFirst(t, src, rec, pro, "transfer 100 to m", now)
	r1, err := dst.Respond(pro, m1, "s", strikes, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, r2 := openAgain(t, src, dst, pro, ini.Flight(), strikes, now); r2.TookAbandoned() {
		t.Fatal("the destination says it took a flight it has not yet")
	}
	if strikes.Take(r1.Ephemeral()) {
		t.Error("the flight named abandoned before it was taken is taken")
	}
}

// The names full handshakes register are bounded apart from the keys of
// first flights: one source naming random keys (it can claim any source
// in an unauthenticated first message) gets its open refused with Retry
// once it holds its share, many sources once the names fill their part
// of the register, and neither evicts a flight's key nor keeps another
// source's flights out; the names leave twice the window later.
func TestAbandonedNamesBounded(t *testing.T) {
	const max, window = 256, time.Minute
	now := time.Now()
	s := NewStrikes(max, window, now.Add(-time.Second))
	var seq uint32
	key := func() []byte {
		seq++
		k := make([]byte, 32)
		k[0], k[1], k[2], k[3] = byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq)
		return k
	}
	honest := key()
	if err := s.Check(honest, "h", now, now); err != nil {
		t.Fatal(err)
	}
	names := func(n int) [][]byte {
		var ns [][]byte
		for range n {
			ns = append(ns, key())
		}
		return ns
	}
	// One source.
	named := 0
	for ; named < max; named += MaxAbandoned {
		if _, err := s.Abandon(names(MaxAbandoned), "m", now); err != nil {
			if !errors.Is(err, ErrRetry) {
				t.Fatalf("refused: %v, want ErrRetry", err)
			}
			break
		}
	}
	if limit := maxNamedOf(max); named >= limit {
		t.Fatalf("one source registered %d names, the register's part for names is %d", named, limit)
	}
	// Many sources.
	for i := 0; ; i++ {
		if _, err := s.Abandon(names(MaxAbandoned), "m"+string(rune('a'+i%26))+string(rune('a'+i/26)), now); err != nil {
			break
		}
		if i > max {
			t.Fatal("names without bound")
		}
	}
	if n := s.named; n > maxNamedOf(max) {
		t.Fatalf("%d names registered, bound %d", n, maxNamedOf(max))
	}
	if !s.Seen(honest) {
		t.Fatal("the names evicted a flight's key")
	}
	// The flights of the sources keep their room.
	for i := range max - 1 {
		if err := s.Check(key(), "h"+string(rune('a'+i%26))+string(rune('a'+i/26)), now, now); err != nil {
			t.Fatalf("flight %d of other sources refused: %v", i, err)
		}
	}
	// Names leave after twice the window; flights after one.
	later := now.Add(2*window + time.Second)
	if err := s.Check(key(), "h", later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Abandon(names(MaxAbandoned), "m", later); err != nil {
		t.Fatalf("names after twice the window: %v", err)
	}
	if s.named != MaxAbandoned || len(s.seen) != 1+MaxAbandoned {
		t.Fatalf("after twice the window: %d names, %d keys held", s.named, len(s.seen))
	}
}
