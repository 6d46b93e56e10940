package node

import (
	"bytes"
	"sync"
)

// metaCache keeps, per member, the last metadata bytes parsed and what
// parsing them gave. Memberlist hands NotifyAlive every alive message it
// receives, also the copies of one it has already taken (each member
// passes a message on several times, so a node hears each one about a
// dozen times in a mesh of hundreds), and record parses the same bytes
// again when they change a member: parsing each distinct metadata of a
// member once is enough. Bounded by maxMembers names; a member beyond it
// is parsed every time.
//
// The cache holds the bytes it was given, not a copy: they are memberlist's
// (an alive message's metadata, which memberlist keeps as the member's and
// never writes to), as checkSigned holds them. Two more copies of every
// member's metadata per node (one as a string) were 5 % of the live heap
// of a process simulating 300 nodes.
type metaCache struct {
	mu sync.Mutex
	m  map[string]metaParse
}

type metaParse struct {
	raw  []byte // never written to
	meta parsedMeta
	err  error
}

// parse returns the member's metadata raw as parseMeta gives it; the
// caller never writes to raw afterwards. The returned parsedMeta shares
// its slices with the cache and raw: read only.
func (c *metaCache) parse(name string, raw []byte) (parsedMeta, error) {
	c.mu.Lock()
	p, ok := c.m[name]
	c.mu.Unlock()
	if ok && bytes.Equal(p.raw, raw) {
		return p.meta, p.err
	}
	p = metaParse{raw: raw}
	p.meta, p.err = parseMeta(raw)
	c.mu.Lock()
	if _, known := c.m[name]; known || len(c.m) < maxMembers {
		if c.m == nil {
			c.m = map[string]metaParse{}
		}
		c.m[name] = p
	}
	c.mu.Unlock()
	return p.meta, p.err
}

// forget drops a member that left.
func (c *metaCache) forget(name string) {
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}
