package links

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// Defaults applied by QUICConfig for zero fields.
const (
	DefaultListenAddr       = "127.0.0.1:0"
	DefaultMaxStreams       = 4096
	DefaultProbeInterval    = 200 * time.Millisecond
	DefaultProbeMisses      = 4
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultControlQueue     = 256
	// DefaultControlBytes is QUICConfig.ControlBytes when zero: 4 MiB,
	// above a whole routing table at routing's default MaxRoutes (4,096
	// destinations, each an update and an attestation of about 550 bytes
	// in a mesh of plain certificates: about 2.4 MB with names of ten
	// bytes), so that a new link's full dump, queued while the peer has
	// granted only its control stream's initial 512 KiB window, is not
	// dropped; and a quarter of the 16 MiB that ControlQueue frames of
	// MaxFrameSize would hold. (Routing also paces what it sends a
	// neighbour, 128 KiB per 50 ms by default, so the queue grows only
	// while the link carries less than that.) Attestations carry the
	// origin's certificate chain, up to 4 KiB each: with long chains or
	// large keys a full table is 5 MiB or more, and on a link slower than
	// routing's pace its tail is dropped like any routing payload over
	// the bound; no test measures that case.
	DefaultControlBytes    = 4 << 20
	DefaultControlStall    = 30 * time.Second
	DefaultMaxStreamWindow = 4 << 20
	DefaultLinkWindow      = 32 << 20
	// MinStreamWindow is the smallest MaxStreamWindow accepted, and a
	// quarter of the smallest LinkWindow.
	MinStreamWindow = 16 << 10
	// MaxLinkWindow is the largest LinkWindow accepted, 2^62 - 1, and
	// MaxLinkWindow/4 the largest MaxStreamWindow: QUIC sends a window as
	// a variable-length integer (RFC 9000, section 16) and cannot send
	// more, and quic-go panicked at the handshake of a link with more.
	MaxLinkWindow = 1<<62 - 1
	// MaxMaxStreams is the largest MaxStreams accepted, 2^60 - 1: QUIC
	// cannot grant more than 2^60 streams (RFC 9000, section 4.6) and a
	// link needs one more for its control stream. quic-go cut a larger
	// limit down to 2^60 without a word, and the largest int overflowed
	// the limit it was given to a negative one: no stream, so that no
	// link came up ("open control stream: closed by peer").
	MaxMaxStreams      = 1<<60 - 1
	DefaultReaderStall = 2 * time.Second
	// DefaultStalledCode is the reset code of a stream reclaimed from a
	// stalled reader when QUICConfig.StalledCode is zero: the circuit
	// layer's CloseStalled.
	DefaultStalledCode = 9
	// DefaultStreamAborts is QUICConfig.StreamAborts when zero and
	// MaxStreams is at most as large: as many streams as a peer may hold
	// open at once by default (DefaultMaxStreams), so that a peer that
	// opens its whole allowance and cancels every stream at once stays
	// within it, refilled at 512 a second.
	DefaultStreamAborts = 4096
)

const (
	initialStreamWindow = 512 << 10
	// minStreamWindow is the smallest MaxStreamWindow accepted.
	minStreamWindow = MinStreamWindow
	// quicIdleTimeout is QUIC's idle timeout with the default probe
	// floor: a backstop, as the probes detect a dead peer first. With a
	// longer floor it is longer (idleTimeout).
	quicIdleTimeout = 10 * time.Second
	quicKeepAlive   = 2 * time.Second
)

// ErrConfig is wrapped by NewQUICTransport for an invalid configuration.
var ErrConfig = errors.New("invalid link configuration")

// QUICConfig configures a QUICTransport. The zero value of every field except
// Identity and Handler means the documented default.
type QUICConfig struct {
	// Identity is this node's name, mesh and TLS material. Required. An
	// insecure identity (development mode) accepts any peer.
	Identity *identity.Identity
	// Role and Features are announced in the hello.
	Role     Role
	Features uint64
	// ListenAddr is the UDP address to listen and dial from. Default
	// "127.0.0.1:0".
	ListenAddr string
	// PacketConn, when set, is used instead of ListenAddr (e.g. a simulated
	// network). The caller keeps ownership and closes it after the
	// transport.
	PacketConn net.PacketConn
	// Handler receives link events. Required.
	Handler Handler
	// MaxStreams bounds the circuit streams a peer may have open on one
	// link (QUIC's limit is one more, for the control stream). Default
	// 4096, at most MaxMaxStreams. OpenStream waits for the peer to grant
	// more.
	MaxStreams int
	// ProbeInterval is the liveness probe period. Default 200 ms.
	ProbeInterval time.Duration
	// ProbeMisses is how many probe intervals without an answer declare the
	// peer dead. Default 4 (so 800 ms with the default interval). That
	// is the floor: a peer seen to stall is allowed up to 8 times it
	// (docs/DESIGN.md, "Liveness under load"). QUIC's idle timeout, a backstop, is 10 s
	// or 10 × ProbeInterval × ProbeMisses, whichever is longer; QUIC
	// uses the shorter of the two ends' timeouts.
	ProbeMisses int
	// HandshakeTimeout bounds the QUIC, TLS and hello handshake. Default 5 s.
	// A dial fails after it with nothing back from the address; one the
	// address keeps answering gets twice it in all, then fails with
	// ErrHandshakeSlow.
	HandshakeTimeout time.Duration
	// StaticCost pins the cost of links to the named peers.
	StaticCost map[string]Cost
	// ControlQueue bounds the routing frames queued per link. Default 256.
	ControlQueue int
	// ControlBytes bounds the bytes of the routing frames queued per link
	// (each payload with its 5-byte frame header): a payload that would
	// take them beyond it is dropped with ErrQueueFull, as one beyond
	// ControlQueue is, unless the queue is empty (a payload larger than
	// the bound passes alone). A frame leaves the queue when the link
	// starts writing it, so a link holds at most ControlBytes and the
	// frame being written, whatever the peer reads: a peer that takes its
	// control stream at a trickle, enough that ControlStall never closes
	// its link, holds that much and no more. Default DefaultControlBytes
	// (4 MiB).
	ControlBytes int
	// ControlStall bounds how long the link may go without a control
	// frame (routing, probe, reply) taken by the peer while one waits to
	// be written, counted from the later of that frame's queueing and the
	// end of the previous write: a peer that takes nothing of its control
	// stream for that long (it gives no flow-control credit) has its link
	// closed, so that it does not hold the frames queued for it (up to
	// ControlBytes) for as long as the link lasts. A peer that keeps
	// taking frames, however slowly, is not closed, and may hold
	// ControlBytes meanwhile. Default 30 s.
	ControlStall time.Duration
	// MaxStreamWindow is the QUIC flow-control receive window per stream
	// (minimum MinStreamWindow, at most a quarter of LinkWindow and of
	// MaxLinkWindow; default
	// 4 MiB, or a quarter of a LinkWindow set below 16 MiB): a
	// circuit may keep that much in flight. A stream starts at
	// min(512 KiB, MaxStreamWindow) and grows only while its reader keeps
	// up.
	MaxStreamWindow uint64
	// LinkWindow is the QUIC connection receive window: the bytes the peer
	// may have sent on the link and this node not yet read, all streams
	// together, so the most receive buffer one link can pin. At most
	// MaxLinkWindow. Default the
	// larger of 32 MiB and 4 × MaxStreamWindow. Streams whose readers
	// stalled for ReaderStall are reclaimed once they may hold more than
	// half of it (see ReaderStall), and the streams of one source
	// (SetSource), or of one neighbour (SetNeighbour), are reset, those
	// holding the most first, once they hold more than half of it
	// unread, stalled or not (see reclaim.go).
	LinkWindow uint64
	// ReaderStall is how long a stream's reader may make no progress
	// before the stream counts as stalled: no Read in progress and less
	// than a quarter of what the stream may hold unread taken meanwhile.
	// A slow reader taking less than that while bytes wait counts as
	// stalled too. When the stalled streams of a link may hold more than
	// half of LinkWindow, the link resets them (longest stalled first, then
	// largest) with StalledCode until they fit. A stream counts only once
	// it stalled for ReaderStall, seen at a probe tick, so a peer that
	// keeps opening new streams it fills can hold the rest of the window
	// with streams younger than that: the reclaim bounds how long a
	// stopped reader holds credit, not what such a peer holds at one
	// moment. A stall counts only after ReaderStall plus how late this
	// process's probe ticks ran since it began, at most 4 × ReaderStall:
	// a starved process's readers run as late as its ticks. Default 2 s.
	ReaderStall time.Duration
	// StalledCode is the reset code of a reclaimed stream. Default
	// DefaultStalledCode.
	StalledCode uint64
	// StreamAborts is the budget of each peer for the streams it opens
	// that end without carrying an open: streams this side read from and
	// never named with SetSource (node names every stream whose open
	// header it read whole and checked, so for a node these are the
	// streams reset before or during their header, empty, truncated,
	// malformed or forged). It is a token bucket of StreamAborts tokens,
	// refilled at StreamAborts/8 a second, one taken as each such stream
	// ends; kept by peer name, not by link, so that a peer that redials
	// finds its bucket as it left it. A stream ending beyond it closes
	// the link with close code 0x106 and an error wrapping
	// ErrStreamAborts (one WARN line per peer a minute). Such a stream
	// costs this side and the peer about 27 µs of CPU together, mostly
	// QUIC's; MaxStreams bounds only how many are open at once. A stream
	// is accepted only while the bucket holds a token for each of the
	// link's streams accepted and not yet named or ended, so a peer may
	// have at most StreamAborts such streams at once. Default the larger
	// of DefaultStreamAborts (4,096, refilled at 512 a second) and
	// MaxStreams.
	StreamAborts int
	// OnStalled, when set, is called for every stream reset because its
	// reader stalled, with the peer and the most the stream could hold
	// unread, and for every stream reset because its source held more
	// than half of LinkWindow, with what it was measured holding. It must
	// not block.
	OnStalled func(peer string, unread uint64)
	// OnRefused, when set, is called for every inbound link refused in the
	// handshake, by this node or, in TLS, by the peer (refusals are also
	// logged). It must not block.
	OnRefused func(remote net.Addr, err error)
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	// Test hooks: send another version, node or mesh name in the hello.
	testVersion uint16
	testNode    string
	testMesh    string
	// testHandshakeRate, if set, replaces nodeHandshakeRate and its burst.
	testHandshakeRate float64
	// testPrefixRate, if set, replaces handshakeRate and handshakeBurst,
	// the rate of handshakes each source prefix may start.
	testPrefixRate float64
	// testCreditAtCompletion leaves stream credit to quic-go, given back
	// as each stream completes (no creditBatcher).
	testCreditAtCompletion bool
	// testCreditDelay, if set, replaces creditDelay.
	testCreditDelay time.Duration
	// testCtrlReads, if set, counts the reads of every link's control
	// stream after the handshake.
	testCtrlReads *atomic.Int64
}

// withDefaults returns c with zero fields replaced by defaults.
func (c QUICConfig) withDefaults() QUICConfig {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.ProbeMisses == 0 {
		c.ProbeMisses = DefaultProbeMisses
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.ControlQueue == 0 {
		c.ControlQueue = DefaultControlQueue
	}
	if c.ControlBytes == 0 {
		c.ControlBytes = DefaultControlBytes
	}
	if c.ControlStall == 0 {
		c.ControlStall = DefaultControlStall
	}
	if c.MaxStreamWindow == 0 {
		c.MaxStreamWindow = DefaultMaxStreamWindow
		if c.LinkWindow > 0 {
			// A link window set alone is a working configuration.
			c.MaxStreamWindow = min(DefaultMaxStreamWindow, c.LinkWindow/4)
		}
	}
	if c.LinkWindow == 0 {
		c.LinkWindow = max(DefaultLinkWindow, 4*c.MaxStreamWindow)
	}
	if c.ReaderStall == 0 {
		c.ReaderStall = DefaultReaderStall
	}
	if c.StalledCode == 0 {
		c.StalledCode = DefaultStalledCode
	}
	if c.StreamAborts == 0 {
		c.StreamAborts = max(DefaultStreamAborts, c.MaxStreams)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// validate checks a configuration with defaults applied.
func (c *QUICConfig) validate() error {
	switch {
	case c.Identity == nil:
		return fmt.Errorf("%w: Identity is required", ErrConfig)
	case c.Identity.Node == "" || len(c.Identity.Node) > maxNameLen:
		return fmt.Errorf("%w: node name must be 1..%d bytes", ErrConfig, maxNameLen)
	case len(c.Identity.Mesh) > maxNameLen:
		return fmt.Errorf("%w: mesh name longer than %d bytes", ErrConfig, maxNameLen)
	case c.Handler == nil:
		return fmt.Errorf("%w: Handler is required", ErrConfig)
	case c.Role != RoleRouter && c.Role != RoleLeaf:
		return fmt.Errorf("%w: unknown role %d", ErrConfig, c.Role)
	}
	for peer, cost := range c.StaticCost {
		if cost < MinCost {
			return fmt.Errorf("%w: static cost %d for %s below MinCost %d", ErrConfig, cost, peer, MinCost)
		}
	}
	return c.validateLimits()
}

// validateLimits checks the limits and windows of a configuration with
// defaults applied: what NewQUICTransport and QUIC both refuse.
func (c *QUICConfig) validateLimits() error {
	switch {
	case c.MaxStreams < 0 || c.ProbeInterval < 0 || c.ProbeMisses < 0 ||
		c.HandshakeTimeout < 0 || c.ControlQueue < 0 || c.ControlBytes < 0 || c.ControlStall < 0 || c.ReaderStall < 0 || c.StreamAborts < 0:
		return fmt.Errorf("%w: negative limit", ErrConfig)
	case c.MaxStreams > MaxMaxStreams:
		return fmt.Errorf("%w: MaxStreams %d above MaxMaxStreams (%d, the most streams QUIC can grant less the control stream)", ErrConfig, c.MaxStreams, MaxMaxStreams)
	case c.MaxStreamWindow < minStreamWindow:
		return fmt.Errorf("%w: MaxStreamWindow %d below %d", ErrConfig, c.MaxStreamWindow, minStreamWindow)
	case c.LinkWindow > MaxLinkWindow:
		return fmt.Errorf("%w: LinkWindow %d above MaxLinkWindow (%d, the largest window QUIC can send)", ErrConfig, c.LinkWindow, uint64(MaxLinkWindow))
	case c.MaxStreamWindow > MaxLinkWindow/4:
		return fmt.Errorf("%w: MaxStreamWindow %d above a quarter of MaxLinkWindow (%d)", ErrConfig, c.MaxStreamWindow, uint64(MaxLinkWindow/4))
	case c.LinkWindow < 4*c.MaxStreamWindow:
		return fmt.Errorf("%w: LinkWindow %d below 4 × MaxStreamWindow (%d)", ErrConfig, c.LinkWindow, 4*c.MaxStreamWindow)
	}
	return nil
}

// QUIC returns the quic-go configuration links use (defaults applied),
// so that a plain quic-go baseline can be configured identically, with
// one difference: links also set RequireStreamCreditRelease and give back
// the credit of the peer's streams themselves, with the next answer or in
// batches (creditBatcher). An application of its own that never called
// ReleaseStreamCredit would stall once the peer had opened MaxStreams
// streams, so QUIC leaves it unset and quic-go gives credit back as each
// stream completes.
//
// It fails with ErrConfig for the limits and windows NewQUICTransport
// refuses (MaxStreams, MaxStreamWindow, LinkWindow out of range, a
// negative limit); Identity, Handler, Role and StaticCost are not
// checked, as the quic-go configuration does not use them.
//
// The connection receive window, initial and maximum, is LinkWindow: what
// one link may pin in receive buffers. Streams whose readers stalled for
// ReaderStall are reset while they may hold more than half of it
// (quicLink.reclaim); see ReaderStall for what that does not bound.
func (c QUICConfig) QUIC() (*quic.Config, error) {
	c = c.withDefaults()
	if err := c.validateLimits(); err != nil {
		return nil, err
	}
	streams := uint64(c.MaxStreams) + 1 // + the control stream
	initStream := min(initialStreamWindow, c.MaxStreamWindow)
	return &quic.Config{
		HandshakeIdleTimeout:           c.HandshakeTimeout,
		MaxIdleTimeout:                 c.idleTimeout(),
		KeepAlivePeriod:                quicKeepAlive,
		InitialStreamReceiveWindow:     initStream,
		MaxStreamReceiveWindow:         c.MaxStreamWindow,
		InitialConnectionReceiveWindow: c.LinkWindow,
		MaxConnectionReceiveWindow:     c.LinkWindow,
		MaxIncomingStreams:             int64(streams),
		MaxIncomingUniStreams:          -1,
	}, nil
}

// idleTimeout is QUIC's idle timeout: 10 s, or a quarter more than the
// longest silence the failure detector may allow (detectorCap × the probe
// floor) when that is longer, so that QUIC never closes a link the
// detector still allows a peer it has seen stall. QUIC uses the shorter
// of the two ends' timeouts: both ends need the longer floor.
func (c QUICConfig) idleTimeout() time.Duration {
	floor := time.Duration(c.ProbeMisses) * c.ProbeInterval
	return max(quicIdleTimeout, detectorCap*floor*5/4)
}

// linkQUIC is the quic-go configuration of the transport's links: QUIC
// with the stream credit of the peer's streams held until the link
// releases it. c has been validated.
func (c QUICConfig) linkQUIC() (*quic.Config, error) {
	q, err := c.QUIC()
	if err != nil {
		return nil, err
	}
	q.RequireStreamCreditRelease = !c.testCreditAtCompletion
	return q, nil
}
