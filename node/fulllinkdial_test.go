package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// On the diamond a–{b,c}–d where routing prefers b, a's link to b holds
// every circuit b lets a open on it (b's MaxCircuitsPerLink, 8 here: the
// QUIC stream limit b grants; b withholding stream credit looks the
// same to a). a's Dial to d must open through c at once: a's header
// timeout is longer than its DialTimeout (8 s) here, so only a link
// found with no stream to give passes b over in time. Before, the open
// waited for a stream on b until the deadline and failed, though c was
// free (the race's bound started at the header's write; counted from
// the open's start it passed b over only after the header timeout).
func TestDialPassesOverALinkWithNoStreamLeft(t *testing.T) {
	const perLink = 8
	c := diamondRelayedByBWith(t, nil, func(cfg *Config) {
		shortAnswerBound(cfg)
		if cfg.Name == "a" {
			cfg.Limits.HeaderTimeout = 30 * time.Second
		}
		if cfg.Name == "b" {
			cfg.Limits.MaxCircuitsPerLink = perLink
		}
	})
	fillLink(t, c, "a", "b", perLink)
	firstDialsThroughC(t, c, "grants a no stream")
}

// A relay does the same: r, between a and d with two next hops b and c
// toward d, has its link to the one routing prefers holding every
// circuit that neighbour lets r open on it (8). a's circuit to d, whose
// only next hop is r, must open through r's other next hop at once.
// Before, r waited for a stream on the full link for its DialTimeout
// (10 s), past a's deadline (4 s here), and a's dial failed.
func TestRelayPassesOverALinkWithNoStreamLeft(t *testing.T) {
	const perLink = 8
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "b" || cfg.Name == "c" {
			cfg.Limits.MaxCircuitsPerLink = perLink
		}
	}
	c.build("a-r", "r-b", "r-c", "b-d", "c-d")
	c.waitRoute("a", "d", 3)
	r := c.nodes["r"]
	p, _ := r.Peer("d")
	full, other := p.NextHop, map[string]string{"b": "c", "c": "b"}[p.NextHop]
	if other == "" {
		t.Fatalf("r's next hop to d is %q, want b or c", full)
	}
	waitFor(t, "r to hold a route to d through "+other+" too", patience, func() bool {
		return slices.Contains(r.router.nextHops("d"), other)
	})
	fillLink(t, c, "r", full, perLink)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	start := time.Now()
	conn, err := c.nodes["a"].DialWith(ctx, "d", EchoService, DialOptions{RecordPath: true})
	if err != nil {
		t.Fatalf("a's dial to d through r, r's link to %s full: failed after %v: %v", full, time.Since(start).Round(time.Millisecond), err)
	}
	defer conn.Close()
	if got, want := fmt.Sprint(conn.Path()), fmt.Sprintf("[a r %s d]", other); got != want {
		t.Fatalf("path %s, want %s", got, want)
	}
	echoOnce(t, conn, "ping")
}

// fillLink has from hold perLink echo circuits to its neighbour to (the
// most to lets it open on their link), closed when the test ends, and
// checks that the link grants no more.
func fillLink(t *testing.T, c *cluster, from, to string, perLink int) {
	t.Helper()
	for i := range perLink {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := c.nodes[from].DialWith(ctx, to, EchoService, DialOptions{})
		cancel()
		if err != nil {
			t.Fatalf("circuit %d of %d %s holds to %s: %v", i+1, perLink, from, to, err)
		}
		t.Cleanup(func() { conn.Close() })
	}
	if s, err := c.mustLink(from, to).(links.StreamTrier).TryOpenStream(); !errors.Is(err, links.ErrNoStreamCredit) {
		if s != nil {
			s.Reset(0)
		}
		t.Fatalf("%s opened stream %d to %s (err %v): the limit of %d did not hold, the test proves nothing", from, perLink+1, to, err, perLink)
	}
}
