package routing

import (
	"fmt"
	"testing"
	"time"
)

// seqReader reads a fuzz input byte by byte, zeros past its end.
type seqReader struct {
	b []byte
	i int
}

func (r *seqReader) byte() byte {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return r.b[r.i-1]
}
func (r *seqReader) done() bool  { return r.i >= len(r.b) }
func (r *seqReader) u16() uint16 { return uint16(r.byte())<<8 | uint16(r.byte()) }

// seqNames are the origins the entries name: this engine, neighbours
// (some beyond the slots of the neighbour bitmasks) and others.
var seqNames = []string{"self", "n0", "n1", "n2", "a", "b", "c", "d", "n3", "n33", "e", "n35", "n39"}

// seqNbr names a neighbour of k: n0..n3 mostly, and up to n39, beyond
// the slots of the neighbour bitmasks (maskSlots).
func seqNbr(k byte) string {
	if k%4 == 0 {
		return fmt.Sprintf("n%d", k%40) // slots beyond maskSlots too
	}
	if k%4 == 2 {
		return fmt.Sprintf("n%d", 32+k%8)
	}
	return fmt.Sprintf("n%d", k%4)
}

// seqEntry reads one entry of any kind: seqnos about the wrap and the
// half circle, metrics up to and beyond infinity, epochs 0, 1 and the
// largest, and attestations valid or forged.
func seqEntry(r *seqReader, version uint8) entry {
	name := seqNames[int(r.byte())%len(seqNames)]
	if c := r.byte(); c > 250 {
		name = seqNbr(c)
	}
	seqs := []uint16{0, 1, 2, 3, 0x7fff, 0x8000, 0xffff, 100}
	seq := seqs[r.byte()%8]
	metrics := []Metric{0, 1, 10, 100, DefaultInfinity - 1, DefaultInfinity, 1 << 31, 50}
	m := metrics[r.byte()%8]
	hops := uint16(r.byte() % 4)
	var epoch uint64
	switch r.byte() % 4 {
	case 1:
		epoch = 1
	case 2:
		epoch = ^uint64(0)
	}
	att := fakeAtt(name, epoch, seq)
	if r.byte()%5 == 0 {
		att = []byte("forged")
	}
	k := r.byte() % 7
	switch k {
	case 0, 1:
		return entry{kind: kindUpdate, origin: name, seqno: seq, metric: m, hops: hops}
	case 2:
		return entry{kind: kindRequest, origin: name, seqno: seq, hopcnt: r.byte()}
	case 3:
		return entry{kind: kindAttest, origin: name, seqno: seq, att: att}
	case 4:
		b := uint16(1) << (r.byte() % 4)
		return entry{kind: kindSummary, buckets: b, bucket: uint16(r.byte()) % b, count: uint16(r.byte() % 4), digest: uint64(r.byte())}
	case 5:
		b := uint16(1) << (r.byte() % 4)
		return entry{kind: kindResend, buckets: b, bucket: uint16(r.byte()) % b}
	}
	if version == wireVersion {
		return entry{kind: kindAttUpdate, origin: name, seqno: seq, metric: m, hops: hops, att: att}
	}
	return entry{kind: kindUpdate, origin: name, seqno: seq, metric: m, hops: hops}
}

// FuzzEngineSequence drives one engine (certified, uncertified or a
// leaf, with a table of 6 routes) through up to 200 steps read from the
// input: messages of every entry kind from up to 40 neighbours, links up,
// down and of new cost, drains, new seqnos and ticks from 100 ms to 18
// hours (housekeeping removes origins between steps). No step may panic,
// every message the engine sends must decode, and every query must
// answer. FuzzReceive checks one message at a time; this one, the states
// a sequence of them leaves behind.
func FuzzEngineSequence(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	f.Add([]byte{4, 1, 10, 0, 4, 2, 10, 0, 0, 1, 1, 3, 4, 1, 2, 3, 0, 3, 2, 5, 0, 0, 1, 2, 2, 3, 0, 0, 2, 100, 3, 1, 2, 200})
	f.Fuzz(runEngineSequence)
}

// runEngineSequence is FuzzEngineSequence's run of input b.
func runEngineSequence(t *testing.T, b []byte) {
	r := &seqReader{b: b}
	cfg := Config{Self: "self", MaxRoutes: 6, MaxRoutesPerMessage: 8, Certifier: unsharedCert{&fakeCertifier{}, nil}}
	if b0 := r.byte(); b0&1 != 0 {
		cfg.Certifier = nil
	} else if b0&2 != 0 {
		cfg.Leaf = true
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	for steps := 0; !r.done() && steps < 200; steps++ {
		switch op := r.byte() % 13; op {
		case 12:
			for i := range 40 {
				e.LinkUp(now, fmt.Sprintf("n%d", i), Metric(10+i), false)
			}
		case 0, 1, 2, 3:
			from := seqNbr(r.byte())
			version := uint8(wireBase)
			if r.byte()&1 != 0 {
				version = wireVersion
			}
			n := int(r.byte()%6) + 1
			var es []entry
			for range n {
				es = append(es, seqEntry(r, version))
			}
			_ = e.Receive(now, from, encodeVersion(version, es))
		case 4:
			e.LinkUp(now, seqNbr(r.byte()), Metric(r.byte())*Metric(r.byte()%3), r.byte()%5 == 0)
		case 5:
			e.LinkDown(now, seqNbr(r.byte()))
		case 6:
			now = now.Add(time.Duration(r.byte()) * 100 * time.Millisecond)
			e.Tick(now)
		case 7:
			now = now.Add(time.Duration(r.u16()) * time.Second)
			e.Tick(now)
		case 8:
			e.Drain(now, seqNbr(r.byte()))
		case 9:
			e.Undrain(now, seqNbr(r.byte()))
		case 10:
			e.LinkCost(now, seqNbr(r.byte()), Metric(r.byte())<<uint(r.byte()%28))
		case 11:
			if r.byte()%4 == 0 {
				e.NewSeqno(now)
			} else {
				_ = e.Receive(now, seqNbr(r.byte()), []byte{wireVersion, 0, 0})
			}
		}
		rd := e.Ready()
		for _, m := range rd.Messages {
			if _, err := decodeMessage(m.Payload, 8); err != nil {
				t.Fatalf("bad output: %v", err)
			}
		}
		for _, d := range []string{"a", "b", "n0", "n1", "n33"} {
			e.Lookup(d)
			e.NextHops(d)
			e.Advertisers(d)
			e.Detours(d)
		}
		e.Routes()
		e.NextTick()
	}
}
