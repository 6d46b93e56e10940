package node

import (
	"crypto/rand"
	"encoding/binary"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// resumeWaiters is how many resume opens the attacker keeps waiting.
const resumeWaiters = 400

// TestAttackWaitingResumesWakeOnEveryCircuit: m, a member with a valid
// certificate, opens one resumable circuit to d and never sends its hello,
// then resumeWaiters resume opens naming circuits d does not know. While a
// circuit of m awaits its hello, d holds each such resume open for the
// circuit it names (the resume may have overtaken the hello), up to
// Limits.HeaderTimeout; m renews them. Then h, an honest node, opens
// resumable circuits to d one after the other. Before, every resume open
// waiting at d woke at every change of d's table of resumable circuits,
// whatever the source: each of h's circuits (its hello registering it)
// woke all of m's, each taking the table's lock that h's circuits take,
// and d's process spent several times the CPU per honest circuit. Now a
// waiting resume wakes only when the circuit it names registers or its
// source has no circuit awaiting its hello any more: h's circuits wake
// none of m's.
func TestAttackWaitingResumesWakeOnEveryCircuit(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "d" {
			// d holds m's resumes while the test runs; m would renew
			// them every 5 s with the default.
			cfg.Limits.HeaderTimeout = 2 * time.Minute
		}
	}
	c.build("m-d", "h-d")
	m, d, h := c.nodes["m"], c.nodes["d"], c.nodes["h"]
	// m learns d's key (and a session ticket), as any peer of d does.
	for range 2 {
		if err := roundTrip(t, m, "d", EchoService, []byte("m")); err != nil {
			t.Fatal(err)
		}
	}
	const honest = 40
	// The CPU figures are for the report only (the whole process, on a
	// shared machine); the test asserts the wake-ups d counts.
	honestPhase := func(what string) (woken uint64) {
		t.Helper()
		w0, c0 := d.resumeTable.Woken(), processCPU()
		for i := range honest {
			if err := roundTrip(t, h, "d", EchoService, []byte("h")); err != nil {
				t.Fatalf("%s: h's circuit %d to d: %v", what, i, err)
			}
		}
		woken = d.resumeTable.Woken() - w0
		t.Logf("%s: %d of h's circuits woke waiting resumes %d times; %v of CPU per honest circuit (whole process)", what, honest, woken, (processCPU()-c0)/honest)
		return woken
	}
	honestPhase("without m's resumes")

	open := func(flags circuit.Flags) *circuit.Conn {
		t.Helper()
		conn, err := openResumableByHand(t, m, "d", flags)
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	open(0) // accepted, its hello never sent
	for range resumeWaiters {
		var id [16]byte
		rand.Read(id[:])
		frame := binary.BigEndian.AppendUint64(append([]byte{5}, id[:]...), 0) // resume (docs/PROTOCOL.md §3.9)
		if _, err := open(circuit.FlagResume).Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "d to hold m's circuits", patience, func() bool {
		d.limits.mu.Lock()
		defer d.limits.mu.Unlock()
		return d.limits.total >= resumeWaiters+1
	})
	time.Sleep(500 * time.Millisecond) // the last resume frames are read

	if woken := honestPhase("with m's resumes waiting"); woken >= honest {
		t.Errorf("%d of h's circuits woke %d of m's resumes waiting at d %d times: a waiting resume woke for other sources' circuits", honest, resumeWaiters, woken)
	}
}

// openResumableByHand opens a resumable circuit from m over its link to
// d, to d's echo service, writing the open itself (no resumable layer at
// m: the test writes its frames), with flags added; the circuit is reset
// when the test ends.
func openResumableByHand(t *testing.T, m *Node, d string, flags circuit.Flags) (*circuit.Conn, error) {
	t.Helper()
	s, err := m.link(d).OpenStream(ctxT(t, patience))
	if err != nil {
		return nil, err
	}
	o := &circuit.Open{Dest: d, Source: m.Name(), Service: EchoService, HopLimit: 15, Flags: circuit.FlagResumable | flags}
	sec := circuit.Security{Keys: m.seal.Load()}
	if r, ok := m.keyBook.LookupKey(d); ok {
		sec.Peer = r
	}
	conn, err := circuit.DialSecure(ctxT(t, patience), s, o, circuit.Addr{Node: m.Name(), Service: EchoService}, sec)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Reset(circuit.CloseCancelled) })
	return conn, nil
}
