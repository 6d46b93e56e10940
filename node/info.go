package node

import "time"

// PeerInfo describes a node known to routing.
type PeerInfo struct {
	Name      string `json:"name"`
	Reachable bool   `json:"reachable"`
	NextHop   string `json:"next_hop,omitempty"`
	// Cost is the route's metric. While the route crosses a link being
	// drained (before it closes) it includes the drain's penalty,
	// routing.Config.DrainPenalty (1,048,575 by default): discovery
	// leaves such routes out of the lengths it compares.
	Cost       uint32   `json:"cost"`
	Hops       int      `json:"hops"`
	Alternates []string `json:"alternates,omitempty"` // feasible next hops after NextHop
	Seqno      uint16   `json:"seqno"`
}

// LinkInfo describes one live link.
type LinkInfo struct {
	Peer     string        `json:"peer"`
	Address  string        `json:"address"`
	Role     string        `json:"role"`
	Outbound bool          `json:"outbound"`
	RTT      time.Duration `json:"rtt_ns"`
	RTTVar   time.Duration `json:"rttvar_ns"`
	Loss     float64       `json:"loss"`
	Cost     uint32        `json:"cost"`
	Pinned   bool          `json:"pinned"`
	// Draining: the peer said it is shutting down (its circuits are
	// finishing; it closes the link itself).
	Draining bool      `json:"draining,omitempty"`
	Streams  int       `json:"streams"`
	Since    time.Time `json:"since"`
}

// Status summarises the node.
type Status struct {
	// State is "running", "draining" (Close is letting circuits finish),
	// "closed", "new" before Start, or "starting" while Start runs.
	State       string    `json:"state"`
	Name        string    `json:"name"`
	Mesh        string    `json:"mesh"`
	Role        string    `json:"role"`
	Address     string    `json:"address"`
	Insecure    bool      `json:"insecure"`
	E2E         string    `json:"e2e"` // end-to-end circuit security: "on" or "off"
	Started     time.Time `json:"started"`
	Links       int       `json:"links"`
	Reachable   int       `json:"reachable_peers"`
	Circuits    int       `json:"circuits"`
	Relayed     int       `json:"relayed_circuits"`
	Services    []string  `json:"services"`
	GossipAddr  string    `json:"gossip_address,omitempty"`
	RoutesLimit int       `json:"routes_limit"`
	// CertNotAfter is when the node's certificate expires (zero in
	// insecure mode).
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
}

// EventKind says what an Event reports.
type EventKind int

const (
	// PeerUp: a node became reachable.
	PeerUp EventKind = iota + 1
	// PeerDown: a node is no longer reachable.
	PeerDown
	// LinkUp: a direct link to a neighbour came up.
	LinkUp
	// LinkDown: a direct link went down (Err says why).
	LinkDown
)

func (k EventKind) String() string {
	switch k {
	case PeerUp:
		return "peer-up"
	case PeerDown:
		return "peer-down"
	case LinkUp:
		return "link-up"
	case LinkDown:
		return "link-down"
	}
	return "unknown"
}

// Event reports a change of reachability or links.
type Event struct {
	Kind EventKind
	Peer string
	Time time.Time
	// Route is the route after a PeerUp.
	Route PeerInfo
	// Err says why a link went down.
	Err error
}

// DialOptions adjusts one Dial.
type DialOptions struct {
	// Early returns at once, before the destination accepted: the caller's
	// first bytes travel with the open and a refusal surfaces on the first
	// Read or Write.
	Early bool
	// RecordPath asks every relay to record its name; Conn.Path returns the
	// path the relays reported.
	RecordPath bool
	// HopLimit bounds the relays crossed. Default 16.
	HopLimit uint8
	// NoResume makes the circuit fail as soon as its path does, instead of
	// taking a new path when a relay dies (Config.ResumeTimeout).
	NoResume bool

	resume bool              // the open takes over a suspended circuit
	avoid  []string          // next hops to try last, in this order: a path or a redial through them failed
	tried  func(next string) // called before each next hop is tried
	// raced: an open of the same dial through another next hop, passed
	// over, still runs (hopRace), and may be the full handshake others
	// wait for (awaitKey): this one does not wait for it.
	raced bool
	// opening, when set, is called once the open starts on its link,
	// before it opens a stream there (hopRace.run bounds the wait for a
	// stream and for the answer from then on).
	opening func()
	// full, when set, is called when the open's link grants no stream
	// at once (its peer allows no more now): hopRace.run passes the
	// open over at once, and the open waits for a stream meanwhile.
	full func()
}
