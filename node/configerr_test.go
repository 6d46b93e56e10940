package node

import (
	"context"
	"errors"
	"testing"
	"time"
)

// newAndStart is what a user does with a Config: New, then Start. It
// returns the first error.
func newAndStart(t *testing.T, cfg Config) error {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return n.Start(ctx)
}

// TestInvalidValuesMatchErrInvalidConfig: a user sets values the
// documentation says are invalid and checks the error with
// errors.Is(err, node.ErrInvalidConfig), the package's validation error.
// Before, these were refused with the errors of the packages underneath
// (routing's ErrInvalidConfig from New; links' ErrConfig only from Start,
// after New took the configuration), which do not match it. Both are
// refused by New now.
func TestInvalidValuesMatchErrInvalidConfig(t *testing.T) {
	for name, set := range map[string]func(*Config){
		// Negative is not a documented value of UpdateInterval.
		"Routing.UpdateInterval<0": func(c *Config) { c.Routing.UpdateInterval = -time.Second },
		// StreamWindow: "at most LinkWindow/4".
		"Limits.StreamWindow>LinkWindow/4": func(c *Config) { c.Limits.LinkWindow = 32 << 20; c.Limits.StreamWindow = 16 << 20 },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := Config{Name: "a", Insecure: true, GracePeriod: -1}
			set(&cfg)
			n, err := New(cfg)
			if err == nil {
				n.Close()
				err = newAndStart(t, cfg)
				t.Errorf("%s: New took it; Start: %v", name, err)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%s: got %v; want an error matching node.ErrInvalidConfig", name, err)
			}
		})
	}
}
