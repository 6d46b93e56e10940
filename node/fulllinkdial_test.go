package node

import (
	"context"
	"testing"
	"time"
)

// On the diamond a–{b,c}–d where routing prefers b, a's link to b holds
// every circuit b lets a open on it (b's MaxCircuitsPerLink, 8 here: the
// QUIC stream limit b grants; b withholding stream credit looks the
// same to a). a's Dial to d must open through c once a's header timeout
// (1 s) passed on b, well within its DialTimeout (8 s). Before, the
// race's bound started only once the open's header was written on b, and
// the open waited for a stream on b until the deadline and failed,
// though c was free.
func TestDialPassesOverALinkWithNoStreamLeft(t *testing.T) {
	const perLink = 8
	c := diamondRelayedByBWith(t, nil, func(cfg *Config) {
		shortAnswerBound(cfg)
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
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := a.DialWith(ctx, "b", EchoService, DialOptions{})
	cancel()
	if err == nil {
		t.Fatalf("a opened circuit %d to b: b's limit of %d did not hold, the test proves nothing", perLink+1, perLink)
	}
	firstDialsThroughC(t, c)
}
