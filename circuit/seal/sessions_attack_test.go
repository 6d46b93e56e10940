package seal

import (
	"testing"
	"time"
)

// Members open to d in one message again and again, each open issuing
// them a session (at most sessionsPerSource a source): once d's table of
// sessions is full, theirs replace the sessions of the sources holding
// the most, theirs, not the honest sources' one each, whose next opens
// still resume.
func TestAttackMembersFillSessions(t *testing.T) {
	const (
		bound   = 16
		honest  = 8
		members = 4
		opens   = 2 * sessionsPerSource
	)
	var names []string
	for i := range honest {
		names = append(names, "h"+string(rune('0'+i)))
	}
	for i := range members {
		names = append(names, "m"+string(rune('0'+i)))
	}
	mesh := newMesh(t, append([]string{"d"}, names...)...)
	d := mesh.keys["d"]
	d.sessions.max = bound
	strikes := NewStrikes(1<<20, time.Hour, time.Now().Add(-time.Second))
	for _, n := range names[:honest] {
		openIK(t, mesh.keys[n], d, strikes)
		if !mesh.keys[n].Resumable("d") {
			t.Fatalf("%s holds no session after its one-message open", n)
		}
	}
	for range opens {
		for _, n := range names[honest:] {
			openIK(t, mesh.keys[n], d, strikes)
		}
	}
	held := 0
	for _, n := range names[honest:] {
		held += len(d.sessions.bySource[n])
	}
	rec := d.Record()
	refused := 0
	for _, n := range names[:honest] {
		_, _, r, err := handshake(t, mesh.keys[n], d, "d", &rec, nil)
		if err != nil || !r.Resumed() {
			refused++
			t.Logf("%s's resumed open: %v", n, err)
		}
	}
	t.Logf("after %d members' %d one-message opens each: they hold %d of d's %d sessions; %d of %d honest sources' resumed opens refused",
		members, opens, held, bound, refused, honest)
	if refused != 0 || held != bound-honest {
		t.Fatalf("%d of %d honest sources' resumed opens refused; the members hold %d sessions, want %d", refused, honest, held, bound-honest)
	}
}
