package quic

import (
	"bytes"
	"encoding/binary"
	mrand "math/rand/v2"
	"testing"

	"github.com/quic-go/quic-go/internal/protocol"
)

// modelOps drives a patched sorter and an upstream-mode sorter (copySmall
// off) with the same operations and compares everything observable.
func modelOps(t *testing.T, in []byte, streamLen int) {
	stream := testStream(streamLen)
	for i := range stream {
		stream[i] ^= byte(i >> 8)
	}
	budget := &frameBudget{max: 1 << 62}
	p := newFrameSorter()
	p.budget = budget
	u := newFrameSorter()
	u.copySmall = false

	type held struct {
		data []byte
		want []byte
	}
	var holds []held
	var readP, readU []byte
	outstanding := 0
	mkBuf := func(b []byte) ([]byte, func()) {
		buf := bytes.Clone(b)
		released := false
		outstanding++
		return buf, func() {
			if released {
				t.Fatal("double done")
			}
			released = true
			outstanding--
			for i := range buf {
				buf[i] ^= 0xa5
			}
		}
	}
	popP := func(n int) {
		for i := 0; i < n; i++ {
			off, data, done := p.Pop()
			if data == nil {
				return
			}
			if int(off) != len(readP) {
				t.Fatalf("patched Pop off %d, read %d", off, len(readP))
			}
			// hold the popped slice (without releasing) to detect later mutation
			holds = append(holds, held{data, bytes.Clone(data)})
			readP = append(readP, data...)
			if done != nil {
				done()
				// after done the upstream buffer is scribbled; our held copy of
				// a non-owned entry becomes invalid, so drop that hold
				holds = holds[:len(holds)-1]
			}
		}
	}
	popU := func() {
		for {
			_, data, done := u.Pop()
			if data == nil {
				return
			}
			readU = append(readU, data...)
			if done != nil {
				done()
			}
		}
	}
	for len(in) >= 4 {
		op := in[0]
		a := int(binary.BigEndian.Uint16(in[1:]))
		c := int(in[3])
		in = in[4:]
		switch op % 8 {
		case 0, 1, 2, 3, 4: // push
			off := a % streamLen
			var n int
			switch op / 8 % 4 {
			case 0:
				n = 1 + c%8
			case 1:
				n = 1 + c*2
			case 2:
				n = 500 + c%30 // around the threshold
			default:
				n = 1 + c*c/16
			}
			end := min(off+n, streamLen)
			b1, d1 := mkBuf(stream[off:end])
			b2, d2 := mkBuf(stream[off:end])
			e1 := p.Push(b1, protocol.ByteCount(off), d1)
			e2 := u.Push(b2, protocol.ByteCount(off), d2)
			if (e1 == nil) != (e2 == nil) {
				t.Fatalf("push [%d,%d): patched err %v, upstream err %v", off, end, e1, e2)
			}
			if e1 != nil {
				return
			}
		case 5: // pop some from patched, all from upstream, compare prefix
			popP(1 + c%3)
			popU()
		case 6: // Peek at the patched read position
			n := 1 + a%6000
			buf := make([]byte, n)
			err := p.Peek(p.readPos, buf)
			// model: contiguous bytes available from readPos
			avail := contiguous(u, p.readPos)
			if err == nil {
				if protocol.ByteCount(n) > avail {
					t.Fatalf("Peek %d ok but only %d available", n, avail)
				}
				if !bytes.Equal(buf, stream[p.readPos:int(p.readPos)+n]) {
					t.Fatal("Peek returned wrong bytes")
				}
			} else if protocol.ByteCount(n) <= avail {
				t.Fatalf("Peek %d failed but %d available", n, avail)
			}
		case 7:
			checkFrameSorterInvariants(t, p, budget)
		}
		for _, h := range holds {
			if !bytes.Equal(h.data, h.want) {
				t.Fatal("a popped owned buffer was modified after Pop")
			}
		}
		// gaps must be identical
		g1, g2 := p.gaps.Front(), u.gaps.Front()
		for g1 != nil && g2 != nil {
			if g1.Value != g2.Value {
				t.Fatalf("gaps differ: %v vs %v", g1.Value, g2.Value)
			}
			g1, g2 = g1.Next(), g2.Next()
		}
		if g1 != nil || g2 != nil {
			t.Fatal("gap lists of different length")
		}
		if p.readPos == u.readPos && p.HasMoreData() != u.HasMoreData() {
			t.Fatal("HasMoreData differs")
		}
		checkCover(t, p)
	}
	popP(1 << 30)
	popU()
	if !bytes.Equal(readP, readU) {
		t.Fatalf("patched read %d bytes, upstream %d; equal prefix? %v", len(readP), len(readU), bytes.HasPrefix(readU, readP) || bytes.HasPrefix(readP, readU))
	}
	if !bytes.Equal(readP, stream[:len(readP)]) {
		t.Fatal("read bytes differ from stream")
	}
	// everything remaining must be released by drop
	p.drop()
	u.drop()
	if budget.entries.Load() != 0 || len(p.ownedEnds) != 0 {
		t.Fatalf("after drop: budget %d, ownedEnds %d", budget.entries.Load(), len(p.ownedEnds))
	}
	if outstanding != 0 {
		t.Fatalf("%d done callbacks not called", outstanding)
	}
}

// contiguous returns the number of contiguous bytes queued in s starting at
// from (counting from inside entries, via gaps).
func contiguous(s *frameSorter, from protocol.ByteCount) protocol.ByteCount {
	for g := s.gaps.Front(); g != nil; g = g.Next() {
		if g.Value.Start >= from {
			if g.Value.Start == from {
				return 0
			}
			return g.Value.Start - from
		}
		if g.Value.End > from {
			return 0
		}
	}
	return 0
}

// checkCover: entries of p do not overlap each other nor gaps, and together
// with gaps cover [readPos, inf).
func checkCover(t *testing.T, s *frameSorter) {
	pos := s.readPos
	g := s.gaps.Front()
	for {
		if g != nil && g.Value.Start == pos {
			if g.Value.End == protocol.MaxByteCount {
				break
			}
			pos = g.Value.End
			g = g.Next()
			continue
		}
		e, ok := s.queue[pos]
		if !ok {
			t.Fatalf("nothing covers offset %d", pos)
		}
		pos += protocol.ByteCount(len(e.Data))
		if g != nil && pos > g.Value.Start {
			t.Fatalf("entry overlaps gap %v", g.Value)
		}
	}
	gapAt := map[protocol.ByteCount]protocol.ByteCount{}
	for g := s.gaps.Front(); g != nil; g = g.Next() {
		if g.Value.End != protocol.MaxByteCount {
			gapAt[g.Value.Start] = g.Value.End
		}
	}
	n := 0
	for pos := s.readPos; ; {
		if e, ok := s.queue[pos]; ok {
			n++
			pos += protocol.ByteCount(len(e.Data))
			continue
		}
		end, ok := gapAt[pos]
		if !ok {
			break
		}
		pos = end
	}
	if n != len(s.queue) {
		t.Fatalf("%d entries reachable, %d queued", n, len(s.queue))
	}
}

func FuzzModelSorter(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 8, 0, 1, 3, 5, 0, 0, 0, 16, 0, 0, 9})
	f.Fuzz(func(t *testing.T, in []byte) {
		modelOps(t, in, 12000)
	})
}

func TestModelSorterRandom(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	runs := 20000
	if testing.Short() {
		runs = 1000 // the fuzz target goes further: go test -fuzz FuzzModelSorter
	}
	for i := 0; i < runs; i++ {
		in := make([]byte, 4*(1+rng.IntN(400)))
		for j := range in {
			in[j] = byte(rng.Uint32())
		}
		// bias offsets to a small window so frames collide
		for j := 0; j+4 <= len(in); j += 4 {
			if rng.IntN(2) == 0 {
				binary.BigEndian.PutUint16(in[j+1:], uint16(rng.IntN(600+i%3000)))
			}
		}
		modelOps(t, in, 1+rng.IntN(12000)+1)
	}
}
