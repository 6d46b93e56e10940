package simulate

import (
	"fmt"
	"testing/synctest"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/memlink"
	"github.com/circuitmesh/circuitmesh/node"
)

// memBackend gives each node an in-memory transport on a memlink.Network.
// Latency becomes the link's cost. On an ordered network (Config.Ordered)
// latency also delays the routing payloads and loss retransmits them
// (memlink.Network.SetPath); otherwise loss is not supported.
type memBackend struct {
	*identities
	net     *memlink.Network
	ordered bool
}

func newMemBackend(mesh string, seed uint64, ordered bool) (*memBackend, error) {
	ids, err := newIdentities(mesh)
	if err != nil {
		return nil, err
	}
	cfg := memlink.Config{}
	if ordered {
		cfg.Settle, cfg.Seed = synctest.Wait, seed
	}
	return &memBackend{identities: ids, net: memlink.NewNetwork(cfg), ordered: ordered}, nil
}

func (b *memBackend) configure(name string, cfg *node.Config) error {
	if err := b.set(name, cfg); err != nil {
		return err
	}
	mesh := cfg.Mesh
	cfg.NewTransport = func(h links.Handler, role links.Role) (links.Transport, error) {
		return b.net.Transport(memlink.TransportConfig{Name: name, Mesh: mesh, Role: role, Handler: h})
	}
	return nil
}

func (b *memBackend) addr(name string) string { return name }

// costUnit is the round-trip time of one unit of links.Cost.
const costUnit = 10 * time.Microsecond

func (b *memBackend) setParams(x, y string, p LinkParams) error {
	if p.Loss > 0 && !b.ordered {
		return fmt.Errorf("loss on in-memory links outside an ordered run: %w", ErrUnsupported)
	}
	if !p.Shape.IsZero() {
		return fmt.Errorf("bandwidth, queue, jitter, reorder and dup on in-memory links: %w", ErrUnsupported)
	}
	b.net.SetCost(x, y, links.Cost(min(2*p.Latency/costUnit, 1<<31)))
	b.net.SetPath(x, y, p.Latency, p.Loss)
	return nil
}

func (b *memBackend) block(x, y string, blocked bool) {
	if blocked {
		b.net.Cut(x, y)
	} else {
		b.net.Heal(x, y)
	}
}

func (b *memBackend) setDown(name string, down bool) {
	if down {
		b.net.Kill(name)
	}
}

// shutdown halts the network: no link is reported down to its other end,
// so the nodes closing after it do not re-route around each other.
func (b *memBackend) shutdown()      { b.net.Halt() }
func (b *memBackend) release(string) {}
func (b *memBackend) close()         {}
