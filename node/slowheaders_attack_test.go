package node

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestAttackSlowHeadersFromFourLinksFillNode: four neighbours of d with
// valid certificates (m1 to m4) each keep 80 streams open on their link,
// each carrying one byte of an open header. Each link is held to its
// share of the open headers being read (Limits.MaxPendingOpensPerLink,
// 64), but four shares are the node's whole bound (MaxPendingOpens,
// 256): before, every circuit a, an honest neighbour, opened to d was
// refused overloaded while the four held it. Now the last quarter of the
// bound is kept for links holding fewer than a sixteenth of their share,
// so that it takes 19 links, not 4, to fill it, and a's circuits are
// served.
func TestAttackSlowHeadersFromFourLinksFillNode(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-d", "m1-d", "m2-d", "m3-d", "m4-d")
	c.waitRoute("a", "d", 1)
	d := c.nodes["d"]
	const rounds = 10
	if base := echoes(t, c.nodes["a"], rounds); base != rounds {
		t.Fatalf("without the flood %d of %d circuits succeeded", base, rounds)
	}
	var floods []*slowHeaders
	for _, m := range []string{"m1", "m2", "m3", "m4"} {
		floods = append(floods, startSlowHeaders(t, c.nodes[m].link("d"), 80))
	}
	held := func() int {
		n := 0
		for _, m := range []string{"m1", "m2", "m3", "m4"} {
			n += d.limits.pendingOn(m)
		}
		return n
	}
	// The four links take what they may of the bound: the whole of it
	// before, all but the reserve (and a little of that) now.
	waitFor(t, "the slow streams to hold d's open headers", time.Minute, func() bool {
		return held() >= d.cfg.Limits.MaxPendingOpens-d.cfg.Limits.MaxPendingOpens/4
	})
	during := echoes(t, c.nodes["a"], rounds)
	most := held()
	for _, f := range floods {
		f.stop()
	}
	t.Logf("honest circuits during the flood: %d/%d; the four links held %d open headers (bound %d), d refused %d",
		during, rounds, most, d.cfg.Limits.MaxPendingOpens, d.limits.pendingRefused.Load())
	if during != rounds {
		t.Fatalf("during the flood %d of %d honest circuits succeeded, want every one", during, rounds)
	}
	// The four links' streams beyond the node-wide bound were refused,
	// and counted.
	rec := httptest.NewRecorder()
	d.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if m := grepLines(rec.Body.String(), "circuitmesh_pending_opens_refused_total "); m == "" || strings.HasSuffix(m, " 0") {
		t.Fatalf("metrics do not show the refusals at the node's bound: %q", m)
	}
}
