package links

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestAttackLinkCyclingLogsBounded: a peer with a valid certificate that
// closes its link and dials again, over and over (each cycle one
// handshake), wrote a "link up" and a "link down" line per cycle at the
// other end, and could do so at the node's handshake rate. Now the lines
// of one peer come at most once per linkLogPeriod each, the next one
// carrying how many were held back.
func TestAttackLinkCyclingLogsBounded(t *testing.T) {
	const cycles = 20
	ca := testCA(t, "m")
	var buf lockedBuffer
	v := newNode(t, issue(t, ca, "v"), func(c *QUICConfig) {
		c.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	})
	m := newNode(t, issue(t, ca, "m"), nil)
	start := time.Now()
	for range cycles {
		l := dial(t, m, v)
		v.rec.waitEvent(t, "up", patience)
		l.Close("cycle")
		v.rec.waitEvent(t, "down", patience)
	}
	most := 2 + int(time.Since(start)/linkLogPeriod) // a slow machine spans more periods
	out := buf.String()
	ups := strings.Count(out, `msg="link up" peer=m `)
	downs := strings.Count(out, `msg="link down" peer=m `)
	t.Logf("%d link cycles of m: v logged %d up and %d down lines", cycles, ups, downs)
	if ups < 1 || downs < 1 || ups > most || downs > most {
		t.Fatalf("%d cycles logged %d link up and %d link down lines for m, want 1 to %d each:\n%s", cycles, ups, downs, most, out)
	}
}
