package node

import (
	"context"
	"testing"
	"time"
)

// Plain circuits (end-to-end security off, or NoResume) opened one after
// another through a relay, each echoing a byte and closed by the source
// before the destination's end came back, keep opening past the per-link
// circuit limit: the relay gives each circuit's stream back to the link.
// The source's Close stops the relay's writing to it (STOP_SENDING) while
// the relay waits on the destination; the relay's stream from the source
// then never completed in QUIC, so the source's link kept none of its
// credit back and, MaxCircuitsPerLink circuits later, every open on it
// waited for good (with the default 4,096, a link's 4,097th plain circuit).
func TestRelayedPlainCircuitsGiveBackTheirStreams(t *testing.T) {
	const limit = 16
	for _, k := range []struct {
		name     string
		e2e      E2E
		noResume bool
	}{{"clear", E2EOff, false}, {"noresume", E2EOn, true}} {
		t.Run(k.name, func(t *testing.T) {
			c := newCluster(t, true)
			c.tweak = func(cfg *Config) {
				cfg.E2E = k.e2e
				cfg.Limits.MaxCircuitsPerLink = limit
			}
			c.build("a-r", "r-b")
			c.waitRoute("a", "b", 2)
			for i := range 3 * limit {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := openEchoCircuit(ctx, c.node("a"), "b", k.noResume)()
				cancel()
				if err != nil {
					t.Fatalf("circuit %d of %d through r (a link's limit is %d): %v", i+1, 3*limit, limit, err)
				}
			}
		})
	}
}
