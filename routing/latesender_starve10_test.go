package routing_test

import (
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
)

// lateLine is the line a — b — c of real engines on a virtual clock,
// where each engine runs (takes the messages sent to it, then its Tick
// when due) only when the test says: b's ticker can run late, as a
// starved node's does, while a and c run on time.
type lateLine struct {
	t     *testing.T
	now   time.Time
	eng   map[string]*routing.Engine
	inbox map[string][]lateMsg
	downs int // PeerDown events for c at a
}

type lateMsg struct {
	from    string
	payload []byte
}

var lateT0 = time.Unix(1_700_000_000, 0)

func newLateLine(t *testing.T) *lateLine {
	l := &lateLine{t: t, now: lateT0, eng: map[string]*routing.Engine{}, inbox: map[string][]lateMsg{}}
	for _, name := range []string{"a", "b", "c"} {
		e, err := routing.New(routing.Config{Self: name, Seed: int64(len(name) + int(name[0]))})
		if err != nil {
			t.Fatal(err)
		}
		l.eng[name] = e
	}
	for _, p := range [][2]string{{"a", "b"}, {"b", "c"}} {
		l.eng[p[0]].LinkUp(l.now, p[1], 10, false)
		l.eng[p[1]].LinkUp(l.now, p[0], 10, false)
	}
	for _, name := range []string{"a", "b", "c"} {
		l.collect(name)
	}
	return l
}

// collect queues what name's engine sends and counts a's losses of c.
func (l *lateLine) collect(name string) {
	rd := l.eng[name].Ready()
	for _, m := range rd.Messages {
		l.inbox[m.To] = append(l.inbox[m.To], lateMsg{name, m.Payload})
	}
	for _, ev := range rd.Events {
		if name == "a" && ev.Dest == "c" && ev.Kind == routing.PeerDown {
			l.downs++
		}
	}
}

// run has name take the messages sent to it, then tick if due.
func (l *lateLine) run(name string) {
	e := l.eng[name]
	msgs := l.inbox[name]
	l.inbox[name] = nil
	for _, m := range msgs {
		if err := e.Receive(l.now, m.from, m.payload); err != nil {
			l.t.Fatalf("%s receiving from %s: %v", name, m.from, err)
		}
		l.collect(name)
	}
	if nt := e.NextTick(); !nt.IsZero() && !nt.After(l.now) {
		e.Tick(l.now)
		l.collect(name)
	}
}

// advance moves the clock by d in steps of 100 ms, running a and c at
// every step and b when bRuns says, and reports the time b last ran.
func (l *lateLine) advance(d time.Duration, bRuns func(sinceB time.Duration) bool, lastB time.Time) time.Time {
	for end := l.now.Add(d); l.now.Before(end); {
		l.now = l.now.Add(100 * time.Millisecond)
		if bRuns(l.now.Sub(lastB)) {
			l.run("b")
			lastB = l.now
		}
		l.run("a")
		l.run("c")
	}
	return lastB
}

func (l *lateLine) reachesC() bool {
	_, ok := l.eng["a"].Lookup("c")
	return ok
}

func every(d time.Duration) func(time.Duration) bool {
	return func(since time.Duration) bool { return since >= d }
}

func never(time.Duration) bool { return false }

// TestLateSenderKeepsItsRoutes: b's periodic refresh runs late, its
// ticker firing every 7 s instead of every 4 s, then not for 20 s (a
// starved node), while its link to a lives. a keeps its route to c
// through b all along: the routes b advertises are held in proportion
// to the intervals at which b's summaries come. Before, a held them
// for the configured 14 s whatever b's lateness, lost c 14 s into the
// stall and withdrew it from every node behind it.
func TestLateSenderKeepsItsRoutes(t *testing.T) {
	l := newLateLine(t)
	lastB := l.advance(20*time.Second, every(0), l.now)
	if !l.reachesC() {
		t.Fatal("a does not reach c through b once converged")
	}
	lastB = l.advance(56*time.Second, every(7*time.Second), lastB)
	stall := l.now
	for l.now.Sub(stall) < 20*time.Second {
		lastB = l.advance(100*time.Millisecond, never, lastB)
		if !l.reachesC() {
			t.Fatalf("a lost c %v into a stall of b's ticker (b's summaries came every 7 s before it; %d peer-down events)", l.now.Sub(stall), l.downs)
		}
	}
	lastB = l.advance(10*time.Second, every(0), lastB)
	if !l.reachesC() || l.downs != 0 {
		t.Fatalf("a reaches c: %v, after %d peer-down events", l.reachesC(), l.downs)
	}

	// On time again, b's routes return to the configured expiry: once b
	// is silent (its link up), a drops c 14 s after b's last summary,
	// which came in the 4 s before.
	lastB = l.advance(80*time.Second, every(0), lastB)
	silent := l.now
	lastB = l.advance(9900*time.Millisecond, never, lastB)
	if !l.reachesC() {
		t.Fatalf("a lost c %v after b fell silent, before the configured expiry (14 s after b's last summary)", l.now.Sub(silent))
	}
	l.advance(4200*time.Millisecond, never, lastB)
	if l.reachesC() {
		t.Fatalf("a still reaches c %v after b fell silent, though b was on time for 80 s before: the hold did not return to 14 s", l.now.Sub(silent))
	}
}

// TestLateSenderHoldIsBounded: however late b's summaries came, a
// holds its routes at most twice the configured expiry (28 s) once b
// is silent.
func TestLateSenderHoldIsBounded(t *testing.T) {
	l := newLateLine(t)
	lastB := l.advance(20*time.Second, every(0), l.now)
	lastB = l.advance(90*time.Second, every(12*time.Second), lastB)
	sinceB := l.now.Sub(lastB)
	lastB = l.advance(26*time.Second-sinceB, never, lastB)
	if !l.reachesC() {
		t.Fatalf("a lost c %v after b's last summary, b's summaries coming every 12 s", l.now.Sub(lastB))
	}
	l.advance(3*time.Second, never, lastB)
	if l.reachesC() {
		t.Fatalf("a still reaches c %v after b's last summary: the hold exceeds 28 s", l.now.Sub(lastB))
	}
}
