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
//
// Once the link has room again, a's dials go through b again: a full
// link is no suspect. Before, b was tried last by every dial to d for
// five minutes, as a next hop that did not answer, and the circuits
// took the route routing did not prefer.
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
	free := fillLink(t, c, "a", "b", perLink)
	a := c.nodes["a"]
	if p, _ := a.Peer("d"); p.NextHop != "b" {
		t.Fatalf("routing's next hop from a to d is %q: b not preferred, the test proves nothing", p.NextHop)
	}
	dialEchoVia(t, a, "c", "the dial while b grants a no stream")
	dialEchoVia(t, a, "c", "the next dial while b still grants a no stream")
	free()
	waitFor(t, "a's dials to d to go through b once its link has room", 20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := a.DialWith(ctx, "d", EchoService, DialOptions{RecordPath: true})
		if err != nil {
			t.Fatalf("a's dial to d after b's link has room: %v", err)
		}
		defer conn.Close()
		echoOnce(t, conn, "ping")
		return fmt.Sprint(conn.Path()) == "[a b d]"
	})
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
		// Every link costs the same, so that r reaches b and c over
		// their own links and d through both, whatever the round trips
		// a loaded machine measures (with measured costs, 5 of the 8
		// circuits r opened to b went through c and d once).
		cfg.LinkCosts = map[string]links.Cost{}
		for _, peer := range []string{"a", "b", "c", "d", "r"} {
			if peer != cfg.Name {
				cfg.LinkCosts[peer] = 10
			}
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
// most to lets it open on their link), closed by the function it returns
// or when the test ends, and checks that the link grants no more.
func fillLink(t *testing.T, c *cluster, from, to string, perLink int) (free func()) {
	t.Helper()
	var held []Conn
	free = func() {
		for _, conn := range held {
			conn.Close()
		}
		held = nil
	}
	t.Cleanup(free)
	// Each circuit must cross the link itself: on a loaded machine the
	// measured costs can make routing send one round another way for a
	// moment, and that one is opened again.
	direct := fmt.Sprint([]string{from, to})
	for i, tries := 0, 0; i < perLink; tries++ {
		if tries == 10*perLink {
			t.Fatalf("%d of %d circuits %s opened to %s crossed their link in %d tries", i, perLink, from, to, tries)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := c.nodes[from].DialWith(ctx, to, EchoService, DialOptions{RecordPath: true})
		cancel()
		if err != nil {
			t.Fatalf("circuit %d of %d %s holds to %s: %v", i+1, perLink, from, to, err)
		}
		if got := fmt.Sprint(conn.Path()); got != direct {
			t.Logf("circuit %d of %d %s holds to %s went %s; opening another", i+1, perLink, from, to, got)
			conn.Close()
			continue
		}
		held = append(held, conn)
		i++
	}
	if s, err := c.mustLink(from, to).(links.StreamTrier).TryOpenStream(); !errors.Is(err, links.ErrNoStreamCredit) {
		if s != nil {
			s.Reset(0)
		}
		t.Fatalf("%s opened stream %d to %s (err %v): the limit of %d did not hold, the test proves nothing", from, perLink+1, to, err, perLink)
	}
	return free
}
