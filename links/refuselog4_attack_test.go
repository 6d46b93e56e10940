package links

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// TestAttackStrangersFromManyPrefixesFloodTheLog: the node logs a refused
// link once a minute per source prefix, and a stranger (a certificate of
// another CA) that owns many prefixes (an IPv6 /48 holds 65,536 of /64,
// and tunnel brokers hand them out) has a line written for each. Here 48
// addresses (127.0.4.1–48, each a prefix of its own) dial the node once
// each: before, the node wrote 48 WARN lines; now it names the first
// prefixes, at most maxRefusalLines a minute in all, and one more line
// says that it counts the rest. Every handshake is still refused and
// counted (OnRefused, the node's circuitmesh_links_refused_total).
func TestAttackStrangersFromManyPrefixesFloodTheLog(t *testing.T) {
	const strangers = 48
	var dlog logBuf
	var refusals atomic.Int64
	d := newNode(t, issue(t, testCA(t, "m"), "d"), both(logTo(&dlog), countRefusals(&refusals)))
	other := issue(t, testCA(t, "m"), "x") // same mesh name, another CA

	var wg sync.WaitGroup
	busy := make(chan struct{}, 8) // a few at a time: a loaded machine must not time them out
	for i := range strangers {
		wg.Go(func() {
			busy <- struct{}{}
			defer func() { <-busy }()
			s := newNode(t, other, func(c *QUICConfig) { c.ListenAddr = fmt.Sprintf("127.0.4.%d:0", i+1) })
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			if l, err := s.Dial(ctx, d.LocalAddr().String()); err == nil {
				t.Errorf("stranger %d linked: %v", i, l.Peer())
			}
		})
	}
	wg.Wait()
	waitFor(t, "d to refuse every stranger", patience, func() bool { return refusals.Load() == strangers })

	named := dlog.lines("link refused")
	if len(named) > maxRefusalLines {
		t.Fatalf("d wrote %d WARN lines for %d refused handshakes from as many prefixes, want at most %d:\n%s",
			len(named), strangers, maxRefusalLines, named[len(named)-1])
	}
	if got := dlog.lines("link refusals", "counted"); len(got) != 1 {
		t.Fatalf("d wrote %d lines saying it counts the refusals it does not name, want 1:\n%s", len(got), dlog.String())
	}
	t.Logf("%d refusals, %d named, then: %s", refusals.Load(), len(named), dlog.lines("link refusals", "counted")[0])
	// The lines name the refusals: what the operator needs to see.
	if len(named) == 0 {
		t.Fatal("d named no refusal")
	}
}
