package links

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestAttackDrainingFramesFloodTheLog: a holder of a valid certificate
// links to v, sends a draining frame (0x07) and closes the link with a
// goodbye, over and over (one handshake a cycle), for 3 s. v writes the
// INFO line "peer draining: routing around it" at most once per peer per
// linkLogPeriod (lifeLog), the next carrying the count held back, as for
// the "link up" and "link down" lines of the same cycles
// (TestAttackLinkCyclingLogsBounded); v's handler still hears every
// draining cost. Before, v wrote one line per link: 135 in 3 s.
func TestAttackDrainingFramesFloodTheLog(t *testing.T) {
	ca := testCA(t, "m")
	var buf lockedBuffer
	v := newNode(t, issue(t, ca, "v"), func(c *QUICConfig) {
		c.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	})
	m := newNode(t, issue(t, ca, "m"), nil)
	drain, _ := appendFrame(nil, frameDraining, nil)
	start := time.Now()
	cycles, refused := 0, 0
	for time.Since(start) < 3*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		l, err := m.Dial(ctx, v.LocalAddr().String())
		cancel()
		if err != nil { // the gate's rate for m's prefix
			refused++
			time.Sleep(10 * time.Millisecond)
			continue
		}
		cycles++
		v.rec.waitEvent(t, "up", patience)
		rawControl(t, l, drain)
		v.rec.waitEvent(t, "cost", patience) // v's handler hears the draining cost
		l.Close("cycle")
		v.rec.waitEvent(t, "down", patience)
	}
	elapsed := time.Since(start)
	most := 2 + int(elapsed/linkLogPeriod)
	out := buf.String()
	drains := strings.Count(out, `msg="peer draining: routing around it" peer=m`)
	ups := strings.Count(out, `msg="link up" peer=m `)
	lines := strings.Count(out, "\n")
	t.Logf("%d cycles of m in %v (%d dials refused): v wrote %d lines in all, %d \"peer draining\" (%.0f a second), %d \"link up\"",
		cycles, elapsed.Round(time.Millisecond), refused, lines, drains, float64(drains)/elapsed.Seconds(), ups)
	if cycles <= most {
		t.Fatalf("only %d link cycles of m in %v (%d dials refused): too few to show a bound of %d lines", cycles, elapsed.Round(time.Millisecond), refused, most)
	}
	if drains > most {
		t.Fatalf("%d link cycles of one peer, each sending a draining frame, made v log %d \"peer draining\" lines (want at most %d, as for link up/down)", cycles, drains, most)
	}
}
