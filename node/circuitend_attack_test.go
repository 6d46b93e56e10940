package node

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestAttackCircuitsEndingHereTakeTheReserve: m, a neighbour of d with a
// valid certificate, opens circuits to a service of d that does not
// accept for now and holds them. Circuits ending at d came in on m's link
// but did not count there, so they took the reserve of d's circuit limit
// too: m held the whole limit and h's circuit to d was refused
// overloaded. Now a circuit ending here counts on the link it came in on
// like a relayed one: m holds the limit but for the reserve, and h's
// circuit is admitted.
func TestAttackCircuitsEndingHereTakeTheReserve(t *testing.T) {
	const total = 16
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "d" {
			cfg.Limits.MaxCircuits = total
			cfg.Limits.MaxCircuitsPerLink = total // the link's stream limit too
		}
	}
	c.build("m-d", "h-d")
	c.waitRoute("m", "d", 1)
	c.waitRoute("h", "d", 1)
	ln, err := c.nodes["d"].Listen("svc")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	defer func() {
		for _, cn := range held {
			cn.Close()
		}
	}()
	for range total {
		cn, err := c.nodes["m"].Dial(ctxT(t, 10*time.Second), "d", "svc")
		if err != nil {
			if !errors.Is(err, circuit.ErrOverloaded) {
				t.Fatalf("m's circuit: %v, want accepted or overloaded", err)
			}
			break
		}
		held = append(held, cn)
	}
	hc, err := c.nodes["h"].Dial(ctxT(t, 10*time.Second), "d", "svc")
	t.Logf("m holds %d circuits to d (limit %d); h's circuit: %v", len(held), total, err)
	if len(held) < total-total/4 {
		t.Fatalf("m holds %d circuits to d, want at least %d: the attack did not run", len(held), total-total/4)
	}
	if err != nil {
		t.Fatalf("h's circuit to d while m holds d's circuits: %v", err)
	}
	hc.Close()
}
