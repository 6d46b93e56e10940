package links

import (
	"sync/atomic"
	"testing"
	"time"
)

// stallSim runs a probe loop's account of silence, in simulated
// milliseconds, for a process that runs the first run ms of each period
// ms and is stopped for the rest (as under a CPU quota: a timer due while
// stopped fires when the process runs again, carrying the time it was
// due, and the ticks it missed are dropped, as a Ticker's). The peer
// sends a packet, carrying a control frame, at each ms for which sends is
// true, until it is killed at kill; a packet that arrives while the
// process is stopped waits in the socket's buffer and is read, and
// counted, 5 ms after the process runs again (after the probe tick that
// woke first). It returns when the peer was declared dead, and false if
// it was not by end.
func stallSim(run, period int, sends func(ms int) bool, kill, end int) (int, bool) {
	const interval = 200 * time.Millisecond
	floor := DefaultProbeMisses * interval
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	running := func(ms int) bool { return ms%period < run }
	l := &quicLink{}
	var heard, ticked atomic.Int64
	heard.Store(t0.UnixNano())
	var recv uint64
	acct := newSilence(interval, &heard, &ticked, &l.gaps, t0, recv)
	pending := 0 // packets in the socket's buffer
	nextDue := int(interval / time.Millisecond)
	read := func(ms, n int) { // the connection and the control stream's reader
		recv += uint64(n)
		heardAt(&heard, at(ms))
		if stalledSince(&ticked, interval, at(ms)) {
			l.gaps.restart(at(ms))
		} else {
			l.gaps.observe(at(ms))
		}
	}
	for ms := 1; ms <= end; ms++ {
		if ms < kill && sends(ms) {
			if running(ms) {
				read(ms, 1)
			} else {
				pending++
			}
		}
		if !running(ms) {
			continue
		}
		if pending > 0 && ms%period == 5 {
			read(ms, pending)
			pending = 0
		}
		if ms >= nextDue {
			due := nextDue
			for nextDue <= ms {
				nextDue += int(interval / time.Millisecond)
			}
			silent, wait := acct.tick(at(ms), at(due), recv)
			if silent > l.allowance(floor, wait) {
				return ms, true
			}
		}
	}
	return 0, false
}

// TestDeadPeerFoundUnderRecurringStalls: a process that is stopped for
// 700 ms of every second (a CPU quota of a tenth of a 1 s period beside a
// busy process) gave its peer a fresh window after each stall, and never
// found a dead peer dead: QUIC's idle timeout, 10 s, ended the link. A
// stall now gives a fresh window only if packets came since the last one
// that did: a dead peer is found within a few periods, a live one whose
// packets keep coming (read after each stall) never.
func TestDeadPeerFoundUnderRecurringStalls(t *testing.T) {
	const run, period = 300, 1000
	every := func(n int) func(int) bool { return func(ms int) bool { return ms%n == 0 } }
	slowest := 0
	for kill := 10000; kill < 11000; kill += 50 {
		dead, ok := stallSim(run, period, every(100), kill, 30000)
		if !ok {
			t.Fatalf("peer killed at %d ms never declared dead", kill)
		}
		if took := dead - kill; took < 0 || took > 3000 {
			t.Fatalf("peer killed at %d ms declared dead at %d ms, %d ms later: want within 3 s", kill, dead, took)
		}
		slowest = max(slowest, dead-kill)
	}
	t.Logf("dead peer found within %d ms of its death, at any phase of the stalls", slowest)
	never := 120000
	for name, sends := range map[string]func(int) bool{
		"every 100 ms": every(100),
		// A peer starved alike but out of phase: all its packets arrive
		// while this process is stopped, and are read after each stall.
		"only during our stalls": func(ms int) bool { return ms%period == 600 },
		"every 250 ms":           every(250),
	} {
		if dead, ok := stallSim(run, period, sends, never, never); ok {
			t.Fatalf("live peer sending %s declared dead at %d ms", name, dead)
		}
	}
}
