package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
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
		// "at least links.MinStreamWindow", and so LinkWindow 4 × that.
		"Limits.StreamWindow<MinStreamWindow": func(c *Config) { c.Limits.StreamWindow = links.MinStreamWindow - 1 },
		"Limits.LinkWindow<4×MinStreamWindow": func(c *Config) { c.Limits.LinkWindow = 4*links.MinStreamWindow - 1 },
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

// TestLinkWindowAloneIsAWorkingConfig: Limits.LinkWindow is a setting of
// its own. Set alone below 16 MiB, StreamWindow's default (4 MiB) would
// be more than the quarter of it a stream may take: the default is then
// that quarter, and the node starts and carries a circuit. Before, New
// took Limits{LinkWindow: 8 MiB} and Start refused it every time
// ("LinkWindow 8388608 below 4 × MaxStreamWindow").
func TestLinkWindowAloneIsAWorkingConfig(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.Limits.LinkWindow = 8 << 20 }
	c.link("a", "b")
	c.waitRoute("a", "b", 1)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	conn, err := c.nodes["a"].Dial(ctx, "b", EchoService)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := bytes.Repeat([]byte("w"), 3<<20) // more than the stream's first window
	go func() { _, _ = conn.Write(msg) }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo through links of an 8 MiB window: %v", err)
	}
}
