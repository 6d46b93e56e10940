package links

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestAttackSilentLinksFloodTheLog: a holder of a valid certificate links
// to v and then goes silent (its datagrams to v stop), waits for v to
// declare the link dead, and links again, over and over. Each cycle costs
// it one handshake and about a second; v writes the WARN line "link dead"
// at most once per peer per linkLogPeriod (lifeLog), the next carrying the
// count held back, as for the "link up" and "link down" lines of the same
// cycles (TestAttackLinkCyclingLogsBounded). Before, v wrote one per link:
// 8 in 8.9 s.
func TestAttackSilentLinksFloodTheLog(t *testing.T) {
	const cycles = 8
	ca := testCA(t, "m")
	var buf lockedBuffer
	v := newNode(t, issue(t, ca, "v"), func(c *QUICConfig) {
		c.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	})
	m, fc := faultyNode(t, issue(t, ca, "m"), nil)
	start := time.Now()
	for range cycles {
		fc.cut.Store(false)
		l := dial(t, m, v)
		v.rec.waitEvent(t, "up", patience)
		fc.cut.Store(true) // m goes silent
		v.rec.waitEvent(t, "down", detectorCap*DefaultProbeMisses*DefaultProbeInterval+patience)
		select {
		case <-l.Done():
		case <-time.After(patience):
			t.Fatal("m's link did not end")
		}
	}
	elapsed := time.Since(start)
	most := 2 + int(elapsed/linkLogPeriod)
	out := buf.String()
	dead := strings.Count(out, `msg="link dead" peer=m `)
	downs := strings.Count(out, `msg="link down" peer=m `)
	t.Logf("%d silent links of m in %v: v wrote %d lines in all, %d WARN \"link dead\", %d \"link down\"",
		cycles, elapsed.Round(time.Millisecond), strings.Count(out, "\n"), dead, downs)
	if dead > most {
		t.Fatalf("%d links of one peer that went silent made v log %d \"link dead\" WARN lines in %v (want at most %d, as for link down)",
			cycles, dead, elapsed.Round(time.Millisecond), most)
	}
}
