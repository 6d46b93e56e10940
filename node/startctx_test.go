package node

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/goleak"

	"github.com/circuitmesh/circuitmesh/links/memlink"
)

// TestStartStopsWhenItsContextEnds: Start's ctx "bounds only the start
// itself", but its phases did not watch it: with a DNS server that never
// answers, a Start whose ctx ended waited 5 s for the lookup of a static
// link's name (or of a gossip seed's), then went on and returned nil.
// Now it stops as soon as ctx ends, undoes what it started (gossip
// included when the seed's lookup was under way) and fails with ctx's
// error.
func TestStartStopsWhenItsContextEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Config)
	}{
		{"static link", func(cfg *Config) { cfg.StaticLinks = []string{"seed.example.invalid:4242"} }},
		{"gossip join", func(cfg *Config) { cfg.Discovery.Join = []string{"dns:seed.example.invalid"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, append(leakIgnores, goleak.IgnoreCurrent())...)
			r, resolving := stallingResolver()
			cfg := Config{Name: "a", Mesh: "test", Insecure: true, GracePeriod: -1, Logger: testLogger(t),
				NewTransport: memTransport(memlink.NewNetwork(memlink.Config{}), "a"),
				Discovery:    DiscoveryConfig{BindAddr: "127.0.0.1:0", Resolver: r}}
			tc.set(&cfg)
			n, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				<-resolving
				cancel()
			}()
			err = n.Start(ctx)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Start whose ctx ended while it resolved: %v, want an error matching context.Canceled", err)
			}
			if st := n.Status().State; st != "closed" {
				t.Errorf("state after the failed Start: %q, want closed", st)
			}
			if err := n.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}
