//go:build !linux

package links

import "net"

// routeMTU is the MTU the kernel holds for its route to remote; only
// Linux tells it here.
func routeMTU(*net.UDPAddr) (int, bool) { return 0, false }
