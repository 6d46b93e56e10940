package node

import (
	"regexp"
	"strconv"
	"testing"
	"time"
)

// A node configured with Limits.StreamAborts 64 closes a neighbour's link
// once the neighbour ended that many circuit streams without an open, or
// has them accepted and not yet ended (plus what the bucket refilled
// meanwhile, 8 a second), and says so in the close reason the neighbour
// gets: budget 64, and the streams it counted ended. With the default
// budget (4,096) the 1,024 streams m may open here leave the link up.
func TestLimitsStreamAbortsClosesTheLink(t *testing.T) {
	const budget = 64
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "d" {
			cfg.Limits.StreamAborts = budget
		}
	}
	c.build("m-d")
	c.waitRoute("m", "d", 1)
	m := c.nodes["m"]
	if err := roundTrip(t, m, "d", EchoService, []byte("honest")); err != nil {
		t.Fatal(err)
	}
	l := m.link("d")
	opened, took := abortStreams(t, l, 16*budget)
	re := regexp.MustCompile(`ended (\d+) streams without an open on this link, beyond its budget of (\d+)`)
	sub := re.FindStringSubmatch(l.Err().Error())
	if sub == nil {
		t.Fatalf("m's link to d ended with %v, which does not say how many streams d counted against which budget", l.Err())
	}
	counted, _ := strconv.Atoi(sub[1])
	said, _ := strconv.Atoi(sub[2])
	// The bucket holds budget tokens and refills at budget/8 a second;
	// d closes the link once the streams ended without an open and those
	// accepted and not yet ended (which m opened too) are more than it
	// holds: after budget streams from m at the least, and at the most
	// after d counted budget ended, plus what the bucket refilled while
	// m opened them.
	most := budget + int(float64(budget)/8*took.Seconds()) + 1
	t.Logf("m opened %d streams in %v; d closed the link after counting %d ended without an open against a budget of %d (at most %d)",
		opened, took.Round(time.Millisecond), counted, said, most)
	if said != budget || opened < budget || counted > most {
		t.Fatalf("d closed m's link after m opened %d streams and %d ended without an open, against a budget of %d; want the budget %d, at least %d streams opened and at most %d ended",
			opened, counted, said, budget, budget, most)
	}
}
