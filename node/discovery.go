package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// discovery runs memberlist gossip: it announces this node's name, link
// address and role, and links to discovered nodes the link policy accepts.
// Gossip only discovers; reachability is routing's business.
type discovery struct {
	n  *Node
	ml *memberlist.Memberlist

	mu    sync.Mutex
	links map[string]string // member name → link address kept because of gossip
}

// memberMeta is the gossip metadata of a node (JSON, under
// memberlist.MetaMaxSize).
type memberMeta struct {
	Link string `json:"link"`
	Leaf bool   `json:"leaf,omitempty"`
	Mesh string `json:"mesh"`
}

func startDiscovery(n *Node) (*discovery, error) {
	dc := n.cfg.Discovery
	host, portStr, err := net.SplitHostPort(dc.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("gossip bind address %q: %w", dc.BindAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip bind port %q: %w", portStr, err)
	}
	d := &discovery{n: n, links: make(map[string]string)}
	mc := memberlist.DefaultLANConfig()
	mc.Name = n.cfg.Name
	mc.BindAddr, mc.BindPort = host, port
	if dc.AdvertiseAddr != "" {
		ah, ap, err := net.SplitHostPort(dc.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("gossip advertise address %q: %w", dc.AdvertiseAddr, err)
		}
		mc.AdvertiseAddr = ah
		if mc.AdvertisePort, err = strconv.Atoi(ap); err != nil {
			return nil, fmt.Errorf("gossip advertise port %q: %w", ap, err)
		}
	}
	if len(dc.Key) > 0 {
		mc.SecretKey = dc.Key
	} else {
		n.log.Warn("gossip is NOT encrypted: set a gossip key (Discovery.Key, --gossip-key)")
	}
	mc.Delegate = d
	mc.Events = d
	mc.Logger = log.New(&slogWriter{l: n.log.With("component", "gossip")}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", dc.BindAddr, err)
	}
	d.ml = ml
	// The link address needs the gossip address, known only now.
	if err := ml.UpdateNode(time.Second); err != nil {
		n.log.Warn("gossip metadata update failed", "err", err)
	}
	if len(dc.Join) > 0 {
		if _, err := ml.Join(dc.Join); err != nil {
			n.log.Warn("gossip join failed; will be joined by others", "join", dc.Join, "err", err)
		}
	}
	return d, nil
}

func (d *discovery) addr() string {
	ln := d.ml.LocalNode()
	return net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
}

// linkAddr is the QUIC address announced to others: the transport's
// address, with an unspecified IP replaced by the gossip address's IP.
func (d *discovery) linkAddr() string {
	a, ok := d.n.Addr().(*net.UDPAddr)
	if !ok {
		return addrString(d.n.Addr())
	}
	ip := a.IP
	if ip == nil || ip.IsUnspecified() {
		ip = d.ml.LocalNode().Addr
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(a.Port))
}

// NodeMeta implements memberlist.Delegate.
func (d *discovery) NodeMeta(limit int) []byte {
	if d.ml == nil {
		return nil // called once during Create, before the address is known
	}
	b, _ := json.Marshal(memberMeta{Link: d.linkAddr(), Leaf: d.n.cfg.Leaf, Mesh: d.n.cfg.Mesh})
	if len(b) > limit {
		return nil
	}
	return b
}

// NotifyMsg, GetBroadcasts, LocalState and MergeRemoteState implement
// memberlist.Delegate; circuitmesh gossips metadata only.
func (d *discovery) NotifyMsg([]byte)                           {}
func (d *discovery) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *discovery) LocalState(join bool) []byte                { return nil }
func (d *discovery) MergeRemoteState(buf []byte, join bool)     {}

// NotifyJoin implements memberlist.EventDelegate.
func (d *discovery) NotifyJoin(m *memberlist.Node) { d.consider(m) }

// NotifyUpdate implements memberlist.EventDelegate.
func (d *discovery) NotifyUpdate(m *memberlist.Node) { d.consider(m) }

// NotifyLeave implements memberlist.EventDelegate.
func (d *discovery) NotifyLeave(m *memberlist.Node) {
	d.mu.Lock()
	addr, ok := d.links[m.Name]
	delete(d.links, m.Name)
	d.mu.Unlock()
	if ok {
		d.n.unkeep(addr)
	}
}

// consider links to a discovered member when the policy accepts it.
func (d *discovery) consider(m *memberlist.Node) {
	if m.Name == d.n.cfg.Name || len(m.Meta) == 0 {
		return
	}
	var meta memberMeta
	if err := json.Unmarshal(m.Meta, &meta); err != nil || meta.Link == "" {
		d.n.log.Debug("ignoring gossip member with bad metadata", "member", m.Name)
		return
	}
	if meta.Mesh != d.n.cfg.Mesh {
		return
	}
	mem := Member{Name: m.Name, LinkAddr: meta.Link, Leaf: meta.Leaf}
	policy := d.n.cfg.Discovery.LinkPolicy
	if policy == nil {
		// Default: link to routers; two leaves never link directly.
		policy = func(p Member) bool { return !p.Leaf || !d.n.cfg.Leaf }
	}
	if !policy(mem) {
		return
	}
	d.mu.Lock()
	if _, ok := d.links[m.Name]; ok || len(d.links) >= d.n.cfg.Discovery.MaxLinks {
		d.mu.Unlock()
		return
	}
	d.links[m.Name] = meta.Link
	d.mu.Unlock()
	// Only one side dials, so the pair does not race: the smaller name.
	if d.n.cfg.Name < m.Name {
		d.n.keep(meta.Link)
	}
}

// Members lists the nodes gossip knows (nil without discovery).
func (n *Node) Members() []Member {
	if n.disco == nil {
		return nil
	}
	var out []Member
	for _, m := range n.disco.ml.Members() {
		var meta memberMeta
		json.Unmarshal(m.Meta, &meta)
		out = append(out, Member{Name: m.Name, LinkAddr: meta.Link, Leaf: meta.Leaf})
	}
	return out
}

func (d *discovery) leave(timeout time.Duration) {
	if timeout > time.Second {
		timeout = time.Second
	}
	d.ml.Leave(timeout)
}

func (d *discovery) shutdown() { d.ml.Shutdown() }

// slogWriter adapts memberlist's log.Logger output to slog at debug level
// (warnings and errors at their level).
type slogWriter struct{ l *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	switch {
	case bytes.Contains(p, []byte("[ERR]")):
		w.l.Error(msg)
	case bytes.Contains(p, []byte("[WARN]")):
		w.l.Warn(msg)
	default:
		w.l.Debug(msg)
	}
	return len(p), nil
}

var _ io.Writer = (*slogWriter)(nil)
