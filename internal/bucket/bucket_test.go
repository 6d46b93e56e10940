package bucket

import (
	"testing"
	"time"
)

func TestRefillEarnsRateUpToBurst(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := Full(2, 4, t0)
	b.Tokens = 0
	if got := b.Refill(t0.Add(time.Second)).Tokens; got != 2 {
		t.Fatalf("after 1 s at 2/s: %v tokens, want 2", got)
	}
	if got := b.Refill(t0.Add(time.Hour)).Tokens; got != 4 {
		t.Fatalf("after an hour: %v tokens, want the burst 4", got)
	}
	// A clock that steps back earns nothing and loses nothing.
	b.Tokens = 1
	if got := b.Refill(t0).Tokens; got != 1 {
		t.Fatalf("refill at an earlier time: %v tokens, want 1", got)
	}
}
