package links

import (
	"net"

	"golang.org/x/sys/unix"
)

// routeMTU is the MTU the kernel holds for its route to remote (IP_MTU
// of a UDP socket connected there, which sends nothing): the outgoing
// interface's, or the lower one an ICMP "fragmentation needed" (IPv6:
// "packet too big") from a router on the path reported. ok is false when
// it cannot tell.
func routeMTU(remote *net.UDPAddr) (mtu int, ok bool) {
	network, level, opt := "udp6", unix.IPPROTO_IPV6, unix.IPV6_MTU
	if remote.IP.To4() != nil {
		network, level, opt = "udp4", unix.IPPROTO_IP, unix.IP_MTU
	}
	c, err := net.DialUDP(network, nil, remote)
	if err != nil {
		return 0, false
	}
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var gerr error
	if err := rc.Control(func(fd uintptr) { mtu, gerr = unix.GetsockoptInt(int(fd), level, opt) }); err != nil || gerr != nil {
		return 0, false
	}
	return mtu, true
}
