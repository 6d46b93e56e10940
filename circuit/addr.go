package circuit

// Network is the net.Addr network name of circuit addresses.
const Network = "circuitmesh"

// Addr is a circuit endpoint: a node name and a service on it. It implements
// net.Addr.
type Addr struct {
	Node    string
	Service string
}

// Network returns "circuitmesh".
func (a Addr) Network() string { return Network }

// String returns "node/service".
func (a Addr) String() string { return a.Node + "/" + a.Service }
