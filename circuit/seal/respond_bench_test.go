package seal

import (
	"testing"
	"time"
)

// BenchmarkRespondIK is the destination's side of one one-message open
// (Respond and Reply) from a source whose identity it verified before.
// go test -run '^$' -bench Respond ./circuit/seal/
func BenchmarkRespondIK(b *testing.B) { benchmarkRespond(b, false) }

// BenchmarkRespondIKUnverified is the same with the destination's caches
// of verified identities and static-static secrets emptied before each
// open: what a source whose entries were evicted pays on its next one.
func BenchmarkRespondIKUnverified(b *testing.B) { benchmarkRespond(b, true) }

func benchmarkRespond(b *testing.B, forget bool) {
	m := newMesh(b, "s", "d")
	rec := m.keys["d"].Record()
	strikes := NewStrikes(1<<22, time.Hour, time.Now().Add(-time.Second))
	pro := Prologue("d", "s", "svc", 0)
	firsts := make([][]byte, b.N+1)
	for i := range firsts {
		ini, err := m.keys["s"].InitiateFresh(pro, "d", &rec)
		if err != nil {
			b.Fatal(err)
		}
		if firsts[i], err = ini.First(nil, nil, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	d := m.keys["d"]
	respond := func(first []byte) {
		r, err := d.Respond(pro, first[2:], "s", strikes, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := r.Reply(nil, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	respond(firsts[b.N]) // the identity verified once
	b.ResetTimer()
	for i := range b.N {
		if forget {
			d.seen.mu.Lock()
			d.seen.m = newNameCache[[32]byte, verifiedID](cacheMax)
			d.seen.mu.Unlock()
			d.dh.mu.Lock()
			d.dh.known = newNameCache[[32]byte, []byte](cacheMax)
			d.dh.mu.Unlock()
		}
		respond(firsts[i])
	}
}
