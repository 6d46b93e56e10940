//go:build !race

package circuit

import (
	"bytes"
	"io"
	"runtime"
	"testing"
)

// TestResumableEchoAddsNoAllocs checks that a small message and its
// answer over a sealed circuit allocate nothing at either end (fewer than
// one allocation per echo: AllocsPerRun rounds down), and that the
// resumable layer adds nothing to that: its rings hand their buffers back
// to the pools in the headers they came in, and the delayed
// acknowledgement each end arms for the message it read reuses one timer.
// (Without the race detector, whose pools drop a share of what is put.)
func TestResumableEchoAddsNoAllocs(t *testing.T) {
	perEcho := func(resumable bool) float64 {
		c, d, stop := socketEnds(t, resumable)
		defer stop(nil)
		go echoBytes(d)
		buf := []byte{'x'}
		echo := func() {
			if _, err := c.Write(buf); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatal(err)
			}
		}
		for range 100 { // warm: rings and timers made, pools filled
			echo()
		}
		return testing.AllocsPerRun(1000, echo)
	}
	sealed, resumable := perEcho(false), perEcho(true)
	t.Logf("allocations per echo: sealed %.2f, resumable %.2f", sealed, resumable)
	if sealed >= 1 {
		t.Errorf("a sealed circuit allocates %.2f times per echo, want none", sealed)
	}
	if resumable-sealed >= 1 {
		t.Errorf("the resumable layer adds %.2f allocations per echo, want none", resumable-sealed)
	}
}

// TestResumableSetupAllocs checks what an end of a resumable circuit
// allocates to exist: the Resumable and its quit channel, nothing more.
// Its conds are part of it, and its rings report their sizes to it
// without a method value each.
func TestResumableSetupAllocs(t *testing.T) {
	cfg := ResumeConfig{Budget: &countBudget{}}
	n := testing.AllocsPerRun(100, func() { newResumable(nil, nil, nil, cfg) })
	if n > 2 {
		t.Errorf("an end allocates %.0f times to exist, want 2", n)
	}
}

// TestResumeTableChangesAllocNothing checks that a circuit's changes in
// the table (awaiting its hello, registered, ended) allocate nothing while
// no resume waits for them (TestResumeOvertakesHello: a waiting one still
// learns them).
func TestResumeTableChangesAllocNothing(t *testing.T) {
	tb := NewResumeTable()
	r := newResumable(nil, nil, nil, ResumeConfig{})
	r.table, r.tkey = tb, resumeKey{source: "s", id: [idLen]byte{1}}
	cycle := func() {
		tb.pend("s")
		tb.register(r)
		tb.unpend("s")
		tb.unregister(r)
	}
	cycle() // the maps' entries made once
	if n := testing.AllocsPerRun(100, cycle); n != 0 {
		t.Errorf("a circuit's changes in the table allocate %.0f times, want none", n)
	}
}

// TestReadPathAllocsNothing checks that reading a path's frames allocates
// nothing per call (the frame head is the circuit's, not a local that
// escapes into the path's Read).
func TestReadPathAllocsNothing(t *testing.T) {
	r := newResumable(nil, nil, nil, ResumeConfig{})
	ack := []byte{frameAck, 0, 0, 0, 0, 0, 0, 0, 0}
	br := bytes.NewReader(ack)
	var p Path = bytesPath{br}
	n := testing.AllocsPerRun(100, func() {
		br.Reset(ack)
		if err := r.readPath(p, r.gen, nil); err != io.EOF {
			t.Fatalf("readPath: %v, want io.EOF", err)
		}
	})
	if n != 0 {
		t.Errorf("readPath allocates %.0f times per call, want none", n)
	}
}

// TestSpliceConfiguredBufferPooled checks that a relay whose copy buffer
// is not DefaultSpliceBuffer (a node's Limits.RelayBuffer set to 128 KiB)
// reuses its buffers: a direction takes its large buffer for each burst
// of data and gives it back when a read comes back short, and a buffer of
// another size than the default was allocated afresh for every burst.
func TestSpliceConfiguredBufferPooled(t *testing.T) {
	const size = 128 << 10
	src, in := unixPair(t)
	out, dst := unixPair(t)
	sp := StartSplice(in, out, size)
	defer func() {
		src.Close()
		dst.Close()
		sp.Wait()
	}()
	burst := make([]byte, 64<<10)
	got := make([]byte, len(burst))
	send := func() {
		if _, err := src.Write(burst); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(dst, got); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 { // warm: the pool holds a buffer
		send()
	}
	const bursts = 200
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range bursts {
		send()
	}
	runtime.ReadMemStats(&m1)
	perBurst := (m1.TotalAlloc - m0.TotalAlloc) / bursts
	t.Logf("bytes allocated per 64 KiB burst through a splice with %d-byte buffers: %d", size, perBurst)
	if perBurst >= size/4 {
		t.Errorf("a splice allocated %d bytes per burst, want its %d-byte buffer reused", perBurst, size)
	}
}

// TestResumableHeldRecordsAllocNothing checks that the records a
// resumable end receives while no Read waits, and keeps in the buffers
// they came in (holdLocked), cost no allocation each: its agreement to
// hold one was a closure, allocated for every record held (11
// allocations per burst of four to five records). What a burst still
// allocates is the start of the goroutine that writes its records at the
// source (pipeLoop, which ends when its pipe is empty).
func TestResumableHeldRecordsAllocNothing(t *testing.T) {
	src, dst, stop := socketEnds(t, true)
	defer stop(nil)
	d := dst.(*Resumable)
	burst := make([]byte, 256<<10) // four to eight records, within the held bound
	got := make([]byte, len(burst))
	queued := func() int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.queuedLocked()
	}
	cycle := func() {
		if _, err := src.Write(burst); err != nil {
			t.Fatal(err)
		}
		for queued() < len(burst) { // all of it received, none read
			runtime.Gosched()
		}
		if _, err := io.ReadFull(dst, got); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 { // warm: rings, pools and timers made
		cycle()
	}
	held0 := d.fast.held.Load()
	perBurst := testing.AllocsPerRun(50, cycle)
	held := float64(d.fast.held.Load()-held0) / 51 / float64(len(burst))
	t.Logf("allocations per 256 KiB burst: %.2f; share of its bytes held in their records: %.2f", perBurst, held)
	if held < 0.9 {
		t.Fatalf("only %.2f of the bytes were held in their records: the test does not exercise holdLocked", held)
	}
	if perBurst > 1 {
		t.Errorf("a burst of held records allocated %.2f times, want at most 1 (the source's pipeLoop)", perBurst)
	}
}
