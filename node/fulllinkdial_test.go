package node

import (
	"context"
	"errors"
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
	a := c.nodes["a"]
	for i := range perLink {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := a.DialWith(ctx, "b", EchoService, DialOptions{})
		cancel()
		if err != nil {
			t.Fatalf("circuit %d of %d a holds to b: %v", i+1, perLink, err)
		}
		defer conn.Close()
	}
	if s, err := c.mustLink("a", "b").(links.StreamTrier).TryOpenStream(); !errors.Is(err, links.ErrNoStreamCredit) {
		if s != nil {
			s.Reset(0)
		}
		t.Fatalf("a opened stream %d to b (err %v): b's limit of %d did not hold, the test proves nothing", perLink+1, err, perLink)
	}
	firstDialsThroughC(t, c)
}
