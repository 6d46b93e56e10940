package links

import (
	"fmt"
	"net"
)

// quicDatagram is the UDP payload QUIC needs a path to carry: a client's
// Initial packets, and a server's answers to them, are padded to 1,200
// bytes (RFC 9000, section 14.1), so a path that does not carry them
// carries no handshake.
const quicDatagram = 1200

// pathMTUNeed is the path MTU a QUIC datagram to ip needs: quicDatagram
// and the UDP and IP headers.
func pathMTUNeed(ip net.IP) int {
	if ip.To4() != nil {
		return quicDatagram + 8 + 20
	}
	return quicDatagram + 8 + 40
}

// narrowPath is the error of a dial to remote that got no answer when
// the kernel's route to remote has an MTU below what a QUIC datagram
// needs (routeMTU: the outgoing interface's, or lower once a router on
// the path reported it), wrapping ErrPathMTU; nil when the route's MTU
// is not known or is wide enough.
func narrowPath(remote *net.UDPAddr) error {
	mtu, ok := routeMTU(remote)
	if need := pathMTUNeed(remote.IP); ok && mtu < need {
		return fmt.Errorf("%w: the MTU towards %s is %d bytes, below the %d a QUIC datagram of %d bytes needs (raise the MTU of the interface or tunnel on the path)",
			ErrPathMTU, remote.IP, mtu, need, quicDatagram)
	}
	return nil
}
