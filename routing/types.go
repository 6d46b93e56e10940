package routing

import "fmt"

// Ready holds the outputs produced since the previous call to Engine.Ready.
type Ready struct {
	// Messages must each be delivered (best effort) to neighbour To.
	Messages []Message
	// Events report reachability and next-hop changes, oldest first.
	Events []Event
}

// Message is an opaque routing message for one neighbour.
type Message struct {
	To      string
	Payload []byte
}

// EventKind says what changed about a destination.
type EventKind uint8

const (
	// PeerUp: the destination became reachable.
	PeerUp EventKind = iota + 1
	// PeerDown: the destination became unreachable.
	PeerDown
	// NextHopChanged: the destination stays reachable through another
	// neighbour.
	NextHopChanged
)

func (k EventKind) String() string {
	switch k {
	case PeerUp:
		return "up"
	case PeerDown:
		return "down"
	case NextHopChanged:
		return "nexthop"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event reports a change of the route to Dest. Route is the route after the
// change. (Fields are ordered by size so that none is padded: a cold start
// emits one or two events per destination at every node.)
type Event struct {
	Dest      string
	Route     Route
	Kind      EventKind
	Reachable bool
}

// Route is the selected route to a destination.
type Route struct {
	Dest string
	// NextHop is the neighbour to forward to ("" when unreachable, and for
	// Self).
	NextHop string
	// Metric is the path cost (Infinity when unreachable).
	Metric Metric
	// Hops is the number of links on the path (0 when unreachable).
	Hops int
	// Seqno is the destination's sequence number the route carries.
	Seqno     uint16
	Reachable bool
}

// Stats are cumulative counters plus the current table size.
type Stats struct {
	MessagesIn, MessagesOut uint64
	UpdatesIn, UpdatesOut   uint64
	// RequestsIn and RequestsOut count seqno requests and resend requests
	// (asking a neighbour again for a bucket of routes).
	RequestsIn, RequestsOut uint64
	// RefusedResends counts resend requests ignored because they named
	// another bucket count than our last summary to that neighbour, or a
	// bucket already answered since that summary.
	RefusedResends uint64
	// RefusedSummaries counts summary entries ignored because their
	// neighbour already sent its set of this half update interval, or
	// because they named another bucket count than the set's first, or
	// exceeded it.
	RefusedSummaries uint64
	// RefusedRequests counts seqno requests ignored because the same
	// neighbour already drew a reply (or a forward) for that origin within
	// MinTriggeredInterval.
	RefusedRequests uint64
	// DampedDrains counts drains of a neighbour (its own route
	// retracted) not taken because it had started another too recently:
	// within UpdateInterval, or within a gap doubled for each drain that
	// came soon after the last gap ran out (drain.go).
	DampedDrains uint64
	// Malformed counts messages refused by the decoder, and messages
	// without entries.
	Malformed uint64
	// OverBudget counts messages refused unread because their neighbour
	// exceeded its receive budget (Engine.Receive).
	OverBudget uint64
	// UnknownNeighbour counts messages from nodes with no link up.
	UnknownNeighbour uint64
	// RefusedOrigins counts new destinations refused because the table
	// was full (Config.MaxRoutes).
	RefusedOrigins uint64
	// IgnoredFromLeaf counts routes a leaf neighbour tried to advertise for
	// other nodes.
	IgnoredFromLeaf uint64
	// DroppedMessages and DroppedEvents count outputs discarded because
	// the caller did not drain Ready and the output queue hit its bound.
	DroppedMessages, DroppedEvents uint64
	// PacedBatches counts batches to a neighbour that left updates queued
	// for the next window because they reached Config.MaxBurstBytes.
	PacedBatches uint64
	// SeqnoBumps counts increases of our own sequence number on request.
	SeqnoBumps uint64
	// Uncertified counts updates that no verified attestation of their
	// origin covers at their seqno (Config.Certifier): dropped, or, from
	// a neighbour that has a route to the origin, taken at that route's
	// seqno, which one covered.
	Uncertified uint64
	// BadAttestations counts attestations that failed verification, and
	// ThrottledAttestations those dropped unverified because their
	// neighbour exceeded Config.MaxVerifyFailures or its budget of checks
	// of newer seqnos (2 a second per origin, 50 in all; checkbudget.go).
	BadAttestations, ThrottledAttestations uint64
	// Verified counts attestations verified successfully, and
	// CachedVerdicts those of them that another engine of the process
	// using the same Certifier had verified in the last minute, which
	// were accepted without calling the Certifier again.
	Verified, CachedVerdicts uint64
	// AttestationsOut counts attestations sent, and AttestationsHeld
	// those received that held nothing newer than the attestation we had
	// of the same origin (the sender did not know we held it).
	AttestationsOut, AttestationsHeld uint64
	// AttestationsCrossed counts those of AttestationsHeld that came
	// from a neighbour already known to hold them: mostly ones we sent
	// it while it sent them to us, the two copies crossing on the link
	// (neither end could know), otherwise ones it sent again.
	AttestationsCrossed uint64
	// Damped counts improvements of a route through a neighbour whose
	// routes of its origin were lost, twice, soon after they lowered the
	// feasibility distance, sent at the metric sent before until they
	// held (damp.go).
	Damped uint64
	// Implausible counts updates for another origin claiming fewer hops
	// than 1 or a metric below their hop count (each link costs at least
	// 1), which no honest relay sends.
	Implausible uint64
	// Destinations is the current number of table entries (excluding Self).
	Destinations int
	// Reachable is how many of them have a reachable selected route: what
	// counting the Reachable routes of Routes gives, without building them.
	Reachable int
}
