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
type metaCache struct {
	mu sync.Mutex
	m  map[string]metaParse
}

type metaParse struct {
	raw  string
	meta parsedMeta
	err  error
}

// parse returns the member's metadata raw as parseMeta gives it. The
// returned parsedMeta shares its slices with the cache: read only.
func (c *metaCache) parse(name string, raw []byte) (parsedMeta, error) {
	c.mu.Lock()
	p, ok := c.m[name]
	c.mu.Unlock()
	if ok && p.raw == string(raw) {
		return p.meta, p.err
	}
	own := bytes.Clone(raw)
	p = metaParse{raw: string(own)}
	p.meta, p.err = parseMeta(own)
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
