package simulate

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node"
)

// Backend selects the links a Cluster's nodes use.
type Backend string

const (
	// BackendQUIC runs real QUIC links (TLS 1.3 with a mesh CA) over a
	// simulated datagram network with per-link latency and loss.
	BackendQUIC Backend = "quic"
	// BackendMem runs in-memory links (package links/memlink): no
	// cryptography and no packets, for clusters of hundreds of nodes.
	BackendMem Backend = "mem"
)

// ErrUnsupported is returned for an operation the backend cannot do (such
// as latency and loss on in-memory links).
var ErrUnsupported = errors.New("not supported by this backend")

// backend is the network under a cluster: it gives each (re)started node
// its transport and applies faults.
type backend interface {
	// configure sets the transport of node name in cfg; it is called for
	// every start, including restarts.
	configure(name string, cfg *node.Config) error
	// addr is the address other nodes dial to link to name.
	addr(name string) string
	// setParams shapes the packets between a and b.
	setParams(a, b string, p LinkParams) error
	// block stops (or lets through again) all traffic between a and b.
	block(a, b string, blocked bool)
	// setDown makes every packet to and from name vanish (or not).
	setDown(name string, down bool)
	// shutdown stops all traffic at once when the cluster closes, without
	// telling the nodes (they are about to close anyway).
	shutdown()
	// release frees what configure gave node name once the node closed.
	release(name string)
	// close releases the network after every node closed.
	close()
}

// identities issues each node one certificate from a throwaway mesh CA
// and gives it again on restart.
type identities struct {
	ca  *identity.CA
	ids map[string]*identity.Identity
}

func newIdentities(mesh string) (*identities, error) {
	ca, err := identity.NewCA(mesh, 0)
	if err != nil {
		return nil, fmt.Errorf("create the simulation's mesh CA: %w", err)
	}
	return &identities{ca: ca, ids: map[string]*identity.Identity{}}, nil
}

// set fills in the identity of node name.
func (ids *identities) set(name string, cfg *node.Config) error {
	id := ids.ids[name]
	if id == nil {
		var err error
		if id, err = ids.ca.Issue(name, 24*time.Hour); err != nil {
			return fmt.Errorf("issue the certificate of %s: %w", name, err)
		}
		ids.ids[name] = id
	}
	cfg.Identity, cfg.Mesh = id, id.Mesh
	return nil
}

// quicBackend gives each node a socket on a packetNet and a certificate
// from a throwaway mesh CA.
type quicBackend struct {
	*identities
	net   *packetNet
	addrs map[string]*net.UDPAddr
	conns map[string]*packetConn
}

func newQUICBackend(mesh string, seed uint64) (*quicBackend, error) {
	ids, err := newIdentities(mesh)
	if err != nil {
		return nil, err
	}
	return &quicBackend{identities: ids, net: newPacketNet(seed),
		addrs: map[string]*net.UDPAddr{}, conns: map[string]*packetConn{}}, nil
}

// simPort is the port of every simulated node address.
const simPort = 4242

func (b *quicBackend) configure(name string, cfg *node.Config) error {
	addr := b.addrs[name]
	if addr == nil {
		i := len(b.addrs) + 1
		addr = &net.UDPAddr{IP: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)), Port: simPort}
		b.addrs[name] = addr
	}
	if err := b.set(name, cfg); err != nil {
		return err
	}
	pc, err := b.net.listen(name, addr)
	if err != nil {
		return err
	}
	cfg.PacketConn = pc
	b.conns[name] = pc
	return nil
}

// release closes the node's socket: a closed node leaves the socket it was
// given open.
func (b *quicBackend) release(name string) {
	if pc := b.conns[name]; pc != nil {
		pc.Close()
	}
}

func (b *quicBackend) addr(name string) string { return b.addrs[name].String() }

func (b *quicBackend) setParams(x, y string, p LinkParams) error {
	b.net.setParams(x, y, p)
	return nil
}

func (b *quicBackend) block(x, y string, blocked bool) { b.net.setBlocked(x, y, blocked) }
func (b *quicBackend) setDown(name string, down bool)  { b.net.setDown(name, down) }
func (b *quicBackend) shutdown()                       { b.net.shutdown() }
func (b *quicBackend) close()                          { b.net.close() }
