package node

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// attestMessage is a routing message (wire version 3) of attestation
// entries for origin, one per (seqno, attestation) given.
func attestMessage(origin string, seqs []uint16, atts [][]byte) []byte {
	b := []byte{3}
	b = binary.BigEndian.AppendUint16(b, uint16(len(seqs)))
	for i, s := range seqs {
		b = append(b, 3, byte(len(origin)))
		b = append(b, origin...)
		b = binary.BigEndian.AppendUint16(b, s)
		b = binary.BigEndian.AppendUint16(b, uint16(len(atts[i])))
		b = append(b, atts[i]...)
	}
	return b
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestOwnSeqnoFloodBoundedChecks: m, holding a valid certificate, signs
// ever newer seqnos of its own name ahead of time and sends them to its
// neighbour d, 64 attestation entries per routing message (the most a
// message may carry). Every one is newer than the one before, and d
// checks attestations (Ed25519 and certificate) inside Engine.Receive,
// holding the router lock that every Dial and every relayed open at d
// takes to look up its next hop. When only failed checks were budgeted,
// d checked 3,456 to 3,520 of the 3,840 in full and an honest next-hop
// lookup at d waited up to 0.94 s. Now d checks only the newest of each
// message, and at most 2 a second per origin and neighbour (burst 5), as
// an honest origin raises its seqno at most once a second.
func TestOwnSeqnoFloodBoundedChecks(t *testing.T) {
	c := newCluster(t, true)
	c.build("m-d", "h-d")
	c.waitRoute("h", "m", 2)
	m, d := c.nodes["m"], c.nodes["d"]
	l := c.mustLink("m", "d")
	time.Sleep(300 * time.Millisecond)
	d.router.mu.Lock()
	base, _, ok := d.router.eng.Attestation("m")
	d.router.mu.Unlock()
	if !ok {
		t.Fatal("d holds no attestation of m")
	}
	// m signs K seqnos ahead of time: its whole cost.
	const per = 64
	const K = per * 60
	cert := newOriginCertifier(m.identity(), m.log, 4096)
	seqs := make([]uint16, K)
	atts := make([][]byte, K)
	c0 := cpuTime()
	for i := range K {
		seqs[i] = base + 100 + uint16(i)
		ep := uint64(time.Now().Add(time.Hour).UnixMilli()) // newer than m's epoch
		if seqs[i] < seqs[0] {
			ep++ // past 0
		}
		a, err := cert.Attest("m", ep, seqs[i])
		if err != nil {
			t.Fatal(err)
		}
		atts[i] = a
	}
	signCPU := cpuTime() - c0
	msgs := make([][]byte, 0, K/per)
	for i := 0; i < K; i += per {
		msgs = append(msgs, attestMessage("m", seqs[i:i+per], atts[i:i+per]))
	}

	// While m sends, an honest lookup of a next hop at d (what a Dial or a
	// relayed open at d does first) measures how long it waits.
	var maxWait atomic.Int64
	var lookups atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			d.router.nextHops("h")
			w := int64(time.Since(t0))
			if w > maxWait.Load() {
				maxWait.Store(w)
			}
			lookups.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	// Baseline: the same lookups without the flood.
	time.Sleep(500 * time.Millisecond)
	baseWait := time.Duration(maxWait.Swap(0))
	baseLookups := lookups.Swap(0)

	before := routerStats(d)
	c1 := cpuTime()
	t0 := time.Now()
	sendBy := time.Now().Add(patience)
	for i, msg := range msgs {
		for {
			err := l.SendRouting(msg)
			if err == nil {
				break
			}
			// A full queue is m waiting for d; anything else (the link
			// ended) would never clear.
			if !errors.Is(err, links.ErrQueueFull) || time.Now().After(sendBy) {
				t.Fatalf("m sent %d of %d messages: %v", i, len(msgs), err)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	// Let d take what was queued.
	deadline := time.Now().Add(patience)
	for routerStats(d).MessagesIn-before.MessagesIn < uint64(len(msgs))*9/10 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	el := time.Since(t0)
	floodCPU := cpuTime() - c1
	close(stop)
	wg.Wait()
	after := routerStats(d)
	verified := (after.Verified - after.CachedVerdicts) - (before.Verified - before.CachedVerdicts)
	t.Logf("m signed %d attestations in %v of CPU ahead of time and sent them in %d messages of ~%d bytes",
		K, signCPU.Round(time.Millisecond), len(msgs), len(msgs[0]))
	t.Logf("in %v d took %d messages and verified %d attestations in full; the process used %v of CPU meanwhile (%.1fx the signing)",
		el.Round(time.Millisecond), after.MessagesIn-before.MessagesIn, verified, floodCPU.Round(time.Millisecond),
		float64(floodCPU)/float64(max(signCPU, 1)))
	t.Logf("longest wait of an honest next-hop lookup at d: %v during the flood (%d lookups), %v before (%d lookups)",
		time.Duration(maxWait.Load()).Round(time.Microsecond), lookups.Load(), baseWait.Round(time.Microsecond), baseLookups)
	if limit := uint64(el/time.Second)*2 + 10; verified > limit {
		t.Errorf("one neighbour made d verify %d attestations of its own name in %v (an honest origin issues about 1 a second; want at most %d)",
			verified, el.Round(time.Millisecond), limit)
	}
	// m's honest routes are still believed at d and beyond.
	c.waitRoute("h", "m", 2)
}
