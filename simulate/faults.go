package simulate

import (
	"context"
	"fmt"
	"net"
	"time"
)

// redialTimeout bounds the dial that follows a heal or restart.
const redialTimeout = 10 * time.Second

// Cut blocks all traffic of the edge a–b without telling either node: the
// link dies when its liveness probes go unanswered. Heal restores it.
func (c *Cluster) Cut(a, b string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.openLocked(fmt.Sprintf("cut %s-%s", a, b)); err != nil {
		return err
	}
	e := c.edges[mkpair(a, b)]
	if e == nil {
		return fmt.Errorf("cut %s-%s: %w", a, b, ErrNoEdge)
	}
	e.cut = true
	c.be.block(a, b, true)
	return nil
}

// Heal lets traffic through the given cut edges again (every cut edge
// when edges is empty) and makes each edge's dialling node redial at once
// instead of waiting out its redial backoff, so that what follows measures
// routing rather than the backoff.
func (c *Cluster) Heal(edges ...[2]string) error {
	c.mu.Lock()
	if err := c.openLocked("heal"); err != nil {
		c.mu.Unlock()
		return err
	}
	var healed []*edge
	for _, ab := range edges {
		e := c.edges[mkpair(ab[0], ab[1])]
		if e == nil {
			c.mu.Unlock()
			return fmt.Errorf("heal %s-%s: %w", ab[0], ab[1], ErrNoEdge)
		}
	}
	for _, e := range c.edges {
		if !e.cut || len(edges) > 0 && !containsEdge(edges, e) {
			continue
		}
		e.cut = false
		c.be.block(e.a, e.b, false)
		healed = append(healed, e)
	}
	c.mu.Unlock()
	c.redial(healed)
	return nil
}

func containsEdge(edges [][2]string, e *edge) bool {
	for _, ab := range edges {
		if mkpair(ab[0], ab[1]) == mkpair(e.a, e.b) {
			return true
		}
	}
	return false
}

// redial makes the dialling end of each edge link now, in the background.
func (c *Cluster) redial(edges []*edge) {
	for _, e := range edges {
		n, err := c.live(e.a)
		if err != nil {
			continue
		}
		if _, err := c.live(e.b); err != nil {
			continue
		}
		// Added to c.wg under c.mu while the cluster is open, so before
		// Close waits; after Close, nothing is redialled.
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		addr := c.be.addr(e.b)
		c.wg.Add(1)
		c.mu.Unlock()
		go func() {
			defer c.wg.Done()
			ctx, cancel := context.WithTimeout(c.ctx, redialTimeout)
			defer cancel()
			if err := n.Link(ctx, addr); err != nil && ctx.Err() == nil {
				c.cfg.Logger.Debug("redial after heal failed", "from", e.a, "to", e.b, "err", err)
			}
		}()
	}
}

// Partition cuts every edge between a node of x and a node of y.
func (c *Cluster) Partition(x, y []string) error {
	if err := c.known(append(append([]string(nil), x...), y...)...); err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	in := func(set []string, name string) bool {
		for _, s := range set {
			if s == name {
				return true
			}
		}
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.edges {
		if in(x, e.a) && in(y, e.b) || in(y, e.a) && in(x, e.b) {
			e.cut = true
			c.be.block(e.a, e.b, true)
		}
	}
	return nil
}

// Isolate cuts every edge of the node.
func (c *Cluster) Isolate(name string) error {
	if err := c.known(name); err != nil {
		return fmt.Errorf("isolate: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.edges {
		if e.a == name || e.b == name {
			e.cut = true
			c.be.block(e.a, e.b, true)
		}
	}
	return nil
}

// known checks that every name is a node of the cluster.
func (c *Cluster) known(names ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.openLocked("cluster"); err != nil {
		return err
	}
	for _, name := range names {
		if c.members[name] == nil {
			return fmt.Errorf("node %s: %w", name, ErrUnknownNode)
		}
	}
	return nil
}

// Kill stops the node the way a crash does: from now on none of its
// packets reach anyone (no goodbye), and its resources are released in the
// background. Neighbours notice through their liveness probes.
func (c *Cluster) Kill(name string) error {
	c.mu.Lock()
	m := c.members[name]
	if closed := c.closed; closed || m == nil || m.n == nil {
		c.mu.Unlock()
		switch {
		case closed:
			// Close closes every node it found running, this one too.
			return fmt.Errorf("kill %s: cluster closed: %w", name, net.ErrClosed)
		case m == nil:
			return fmt.Errorf("kill %s: %w", name, ErrUnknownNode)
		}
		return fmt.Errorf("kill %s: %w", name, ErrNodeDown)
	}
	c.be.setDown(name, true)
	n, dead := m.n, make(chan struct{})
	m.n, m.dead = nil, dead
	// Added under c.mu while the cluster is open, so before Close waits
	// for the killed nodes.
	c.kills.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.kills.Done()
		defer close(dead)
		if err := n.Close(); err != nil {
			c.cfg.Logger.Debug("closing a killed node", "node", name, "err", err)
		}
		c.mu.Lock()
		c.be.release(name)
		c.mu.Unlock()
	}()
	return nil
}

// Restart starts a node that is down (killed, or whose start failed)
// again with the same name, identity and address, a killed one once its
// old instance has closed, and redials its edges that are not cut. It
// fails with ErrNodeUp while the node runs or another AddNodes or Restart
// is starting it.
func (c *Cluster) Restart(ctx context.Context, name string) error {
	ctx, end, err := c.begin(ctx, "restart "+name)
	if err != nil {
		return err
	}
	defer end()
	c.mu.Lock()
	m := c.members[name]
	switch {
	case m == nil:
		c.mu.Unlock()
		return fmt.Errorf("restart %s: %w", name, ErrUnknownNode)
	case m.n != nil:
		c.mu.Unlock()
		return fmt.Errorf("restart %s: %w: it is running (kill it first)", name, ErrNodeUp)
	case m.starting:
		c.mu.Unlock()
		return fmt.Errorf("restart %s: %w: it is starting", name, ErrNodeUp)
	}
	// dead is nil if the node never ran: its first start failed.
	m.starting = true
	dead := m.dead
	c.mu.Unlock()
	if dead != nil {
		select {
		case <-dead:
		case <-ctx.Done():
			c.mu.Lock()
			m.starting = false
			c.mu.Unlock()
			return c.failed(fmt.Errorf("restart %s: waiting for the old instance to end: %w", name, ctx.Err()))
		}
	}
	c.mu.Lock()
	c.be.setDown(name, false)
	c.mu.Unlock()
	if err := c.start(ctx, m); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	c.mu.Lock()
	var edges []*edge
	for _, e := range c.edges {
		if !e.cut && (e.a == name || e.b == name) {
			edges = append(edges, e)
		}
	}
	c.mu.Unlock()
	c.redial(edges)
	return nil
}
