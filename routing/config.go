package routing

import (
	"fmt"
	"time"
)

// Metric is an additive path cost. One unit is 10 µs of round-trip-time
// equivalent, the scale of links.Cost: a link never costs less than 10 units
// (100 µs), so hop count always matters. The metric of a path is the sum of
// its link costs, saturating at the configured infinity.
type Metric uint32

// Defaults applied to zero-valued Config fields.
const (
	// DefaultInfinity is the metric that means "unreachable": 2^24-1 units,
	// about 168 s of round-trip time, far above any real path.
	DefaultInfinity Metric = 1<<24 - 1
	// DefaultHysteresis is the margin a new next hop must beat the current
	// one by before the engine switches at once: 20 units (200 µs of RTT).
	DefaultHysteresis Metric = 20
	// DefaultUpdateInterval is the period of refresh summaries.
	DefaultUpdateInterval = 4 * time.Second
	// DefaultMinTriggeredInterval is the per-neighbour rate limit of
	// triggered updates.
	DefaultMinTriggeredInterval = 50 * time.Millisecond
	// DefaultMaxRoutes is the default bound on the number of destinations.
	DefaultMaxRoutes = 4096
	// DefaultMaxRoutesPerMessage is the default bound on entries per message.
	DefaultMaxRoutesPerMessage = 64
	// DefaultMaxVerifyFailures is the default bound on failed attestation
	// checks per neighbour per second.
	DefaultMaxVerifyFailures = 20
	// DefaultMaxBurstBytes is the default bound on the bytes of updates
	// sent to one neighbour per MinTriggeredInterval: 128 KiB, a quarter
	// of what the links queue per link and direction before they drop
	// (memlink's 512 KiB, a QUIC control stream's initial flow-control
	// window).
	DefaultMaxBurstBytes = 128 << 10
)

// maxBurstMessages bounds the messages sent to one neighbour per
// MinTriggeredInterval: a quarter of the 256 routing frames a link
// queues (links.DefaultControlQueue, memlink.DefaultControlQueue).
const maxBurstMessages = 64

// NoHysteresis, set as Config.Hysteresis, makes the engine switch next hop on
// any strict improvement (the zero value selects DefaultHysteresis).
const NoHysteresis Metric = ^Metric(0)

// MaxNameLen is the longest node name the engine accepts (one length byte on
// the wire).
const MaxNameLen = 255

// maxEntriesLimit is the largest MaxRoutesPerMessage: 240 entries of at most
// 265 bytes keep a message under the 64 KiB control-stream frame.
const maxEntriesLimit = 240

// Config configures an Engine. The zero value of every field except Self
// selects the documented default.
type Config struct {
	// Self is this node's name (required, 1..255 bytes).
	Self string
	// Leaf makes the engine advertise only Self and never re-advertise
	// routes learned from neighbours, so nobody uses this node as transit.
	Leaf bool
	// Infinity is the metric meaning unreachable (default DefaultInfinity,
	// at least 2).
	Infinity Metric
	// Hysteresis: the engine moves a destination to another next hop at
	// once if the new route is better by more than this (default
	// DefaultHysteresis; NoHysteresis for none); a route better by less
	// is taken once it has stayed better for UpdateInterval, so routes
	// still end on the shortest paths. Metric changes smaller than this
	// on the selected route are not sent as triggered updates; the
	// periodic refresh carries them.
	Hysteresis Metric
	// UpdateInterval is the period of refreshes to every neighbour
	// (default 4 s; each period is jittered down by up to 1/8 using Seed):
	// routes whose metric moved below the hysteresis are sent, then a
	// summary of what the neighbour was told, which it checks against
	// what it holds and answers by asking again for what differs
	// (docs/PROTOCOL.md §2.3).
	UpdateInterval time.Duration
	// MinTriggeredInterval rate-limits triggered updates per neighbour
	// (default 50 ms). Retractions, new seqnos and replies to seqno
	// requests wait only a tenth of it; the first update to a new
	// neighbour and periodic refreshes are not delayed.
	MinTriggeredInterval time.Duration
	// RouteExpiry drops a route learned from a neighbour that has not been
	// refreshed for this long (default 3.5 × UpdateInterval), scaled up,
	// to at most twice as long, for a neighbour whose summaries came
	// further apart than UpdateInterval (hold.go). A neighbour's route to
	// itself never expires while its link is up.
	RouteExpiry time.Duration
	// MaxRoutes bounds the number of destinations in the table (default
	// 4096). Updates for new destinations beyond it are refused and counted
	// in Stats.RefusedOrigins.
	MaxRoutes int
	// MaxRoutesPerMessage bounds the entries in one message, both sent and
	// accepted (default 64, at most 240 so that a message always fits a
	// 64 KiB control-stream frame).
	MaxRoutesPerMessage int
	// Seed seeds the only randomness: periodic-update jitter and the initial
	// sequence number.
	Seed int64
	// Certifier, if set, certifies route origins: this node attests its
	// own seqnos with it, and an update for origin X at seqno s enters the
	// table only if X's attestation for s or a newer seqno verified
	// (docs/PROTOCOL.md, "Certified origins"). Names without a valid
	// attestation never enter the table, so MaxRoutes counts certified
	// origins only. Nil means every update is believed (tests, simulation).
	Certifier Certifier
	// Epoch is the epoch of this node's first seqno: its attestations
	// are ordered by (epoch, seqno), and the epoch grows by one each time
	// the seqno passes 0, so every attestation this engine signs is newer
	// than the ones it signed before. A node that restarts must give a
	// larger Epoch than any its previous lives reached (node gives its
	// start time in milliseconds since 1970), or the attestations that
	// previous life signed stay newer than the new ones, until it sees one
	// and jumps past it (a neighbour holding one sends it back when this
	// node sends an older one of its own). Zero is a valid epoch (tests,
	// simulation), but two attestations of epoch 0 compare by seqno
	// modulo 2^16, as those of the release before, which signs no epoch
	// (attNewer): the epoch orders them only from 1 on.
	Epoch uint64
	// MaxVerifyFailures bounds the attestations of one neighbour that may
	// fail verification per second (default 20, with a burst of 5×); beyond
	// it that neighbour's attestations are dropped unverified, so a
	// neighbour cannot make this node burn CPU on bad signatures.
	MaxVerifyFailures int
	// MaxBurstBytes bounds the bytes sent to one neighbour per
	// MinTriggeredInterval (default DefaultMaxBurstBytes; at most 64
	// messages as well): a whole table for a new link, triggered updates
	// and the answers to resend requests beyond it wait for the next
	// interval, so that a link's control queue does not overflow and drop
	// them. A summary waits until they are sent, so that it describes
	// what the neighbour was told. Requests are not held back.
	MaxBurstBytes int
}

// Certifier signs and checks origin attestations. The engine treats
// attestations as opaque bytes; the caller binds them to its PKI. It is
// called from the goroutine driving the engine.
//
// Successful verifications are remembered process-wide (at most 65,536,
// each for one minute of the callers' time) for every Certifier that is
// comparable (a pointer, typically): engines configured with the same
// Certifier value then check a given attestation once between them, so a
// Certifier shared by engines must give every one of them the same
// verdict.
//
// An attestation is of an (epoch, seqno) pair, and attestations of one
// origin are ordered by it (docs/PROTOCOL.md, "Certified origins"): the
// epoch must be among the bytes signed, so that an old attestation
// cannot pass for a newer one.
type Certifier interface {
	// Attest returns the attestation that origin (this node) issued seqno
	// in epoch.
	Attest(origin string, epoch uint64, seqno uint16) ([]byte, error)
	// Epoch returns the epoch att claims, without checking anything
	// (0 if it names none); it must depend on att alone. The engine
	// uses it to ignore unchecked an attestation no newer than the one
	// it holds.
	Epoch(att []byte) uint64
	// Verify reports whether att proves that origin issued seqno in
	// epoch.
	Verify(origin string, epoch uint64, seqno uint16, att []byte) error
}

// withDefaults returns cfg with defaults applied, or an error wrapping
// ErrInvalidConfig.
func (cfg Config) withDefaults() (Config, error) {
	c := cfg
	if c.Infinity == 0 {
		c.Infinity = DefaultInfinity
	}
	if c.Hysteresis == 0 {
		c.Hysteresis = DefaultHysteresis
	} else if c.Hysteresis == NoHysteresis {
		c.Hysteresis = 0
	}
	if c.UpdateInterval == 0 {
		c.UpdateInterval = DefaultUpdateInterval
	}
	if c.MinTriggeredInterval == 0 {
		c.MinTriggeredInterval = DefaultMinTriggeredInterval
	}
	if c.RouteExpiry == 0 {
		c.RouteExpiry = c.UpdateInterval * 7 / 2
	}
	if c.MaxRoutes == 0 {
		c.MaxRoutes = DefaultMaxRoutes
	}
	if c.MaxRoutesPerMessage == 0 {
		c.MaxRoutesPerMessage = DefaultMaxRoutesPerMessage
	}
	if c.MaxBurstBytes == 0 {
		c.MaxBurstBytes = DefaultMaxBurstBytes
	}
	if c.MaxVerifyFailures == 0 {
		c.MaxVerifyFailures = DefaultMaxVerifyFailures
	}
	switch {
	case c.Self == "" || len(c.Self) > MaxNameLen:
		return c, fmt.Errorf("%w: Self must be 1..%d bytes, got %d", ErrInvalidConfig, MaxNameLen, len(c.Self))
	case c.Infinity < 2:
		return c, fmt.Errorf("%w: Infinity %d < 2", ErrInvalidConfig, c.Infinity)
	case c.UpdateInterval < 0 || c.MinTriggeredInterval < 0 || c.RouteExpiry < 0:
		return c, fmt.Errorf("%w: negative interval", ErrInvalidConfig)
	case c.RouteExpiry <= c.UpdateInterval:
		return c, fmt.Errorf("%w: RouteExpiry %v must exceed UpdateInterval %v", ErrInvalidConfig, c.RouteExpiry, c.UpdateInterval)
	case c.MaxVerifyFailures < 0:
		return c, fmt.Errorf("%w: MaxVerifyFailures %d < 0", ErrInvalidConfig, c.MaxVerifyFailures)
	case c.MaxBurstBytes < 0:
		return c, fmt.Errorf("%w: MaxBurstBytes %d < 0", ErrInvalidConfig, c.MaxBurstBytes)
	case c.MaxRoutes < 0:
		return c, fmt.Errorf("%w: MaxRoutes %d < 0", ErrInvalidConfig, c.MaxRoutes)
	case c.MaxRoutesPerMessage < 0 || c.MaxRoutesPerMessage > maxEntriesLimit:
		return c, fmt.Errorf("%w: MaxRoutesPerMessage %d not in 1..%d", ErrInvalidConfig, c.MaxRoutesPerMessage, maxEntriesLimit)
	}
	return c, nil
}
