package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node/policy"
	"github.com/circuitmesh/circuitmesh/node/topology"
)

// DefaultMesh is the mesh name used when Config.Mesh is empty.
const DefaultMesh = "circuitmesh"

// Config configures a Node. The zero value of every field except Name means
// the documented default.
type Config struct {
	// Name is this node's name in the mesh (required unless Identity is
	// set, in which case it must match the certificate's node name).
	// New refuses a Name or Mesh that breaks identity.ValidateName with
	// ErrInvalidConfig.
	Name string
	// Mesh is the mesh name. Default DefaultMesh (or the identity's mesh).
	Mesh string

	// Identity is the node's certificate and key. When nil, the identity is
	// loaded from CertFile/KeyFile/CAFile, or from DataDir's node.crt,
	// node.key and ca.crt; with Insecure a throwaway development identity
	// is generated instead.
	Identity *identity.Identity
	// DataDir holds the identity files (and, for the daemon, the admin
	// socket).
	DataDir string
	// CertFile, KeyFile and CAFile override the files in DataDir.
	// ReloadIdentity rereads these files (or DataDir's), also when
	// Identity was given.
	CertFile, KeyFile, CAFile string
	// Insecure uses a throwaway self-signed identity and accepts any peer.
	// For development only; the node logs a loud warning.
	Insecure bool

	// ListenAddr is the UDP address for QUIC links. Default
	// "127.0.0.1:0" (an ephemeral loopback port; daemons set it). New
	// refuses one without a port or with a port out of range, unless
	// PacketConn or NewTransport is set (the node then listens on no
	// ListenAddr).
	ListenAddr string
	// PacketConn, when set, carries the QUIC links instead of a UDP socket
	// on ListenAddr (a simulated network, or a socket the caller owns).
	// Close closes it, also on a node that never ran (Close before Start,
	// or after a Start that failed).
	PacketConn net.PacketConn
	// StaticLinks are addresses this node keeps a link to, redialling with
	// backoff while the peer is down. On QUIC links each is a HOST:PORT
	// (New refuses one without a port, or with port 0); the host may be
	// a name, looked up at each dial.
	StaticLinks []string
	// LinkCosts pins the cost routing uses for the link to the named
	// peers (node names, MinCost to MaxLinkCost) instead of the measured
	// cost, on any transport. SetLinkCost changes a pin at run time.
	LinkCosts map[string]links.Cost
	// Leaf nodes never forward circuits and advertise only themselves.
	Leaf bool
	// DisableInfo turns off the built-in info service (InfoService), which
	// tells any node of the mesh this node's name, role, version, links
	// with their quality, and service names. Default: on. Without it,
	// other nodes' Topology lists this node as unreachable.
	DisableInfo bool

	// E2E is end-to-end circuit security: on by default (E2EOn), every
	// circuit is encrypted and authenticated between its two ends and
	// relays see only ciphertext. E2EOff is for meshes whose routers are
	// all trusted; the node then logs a warning at start.
	E2E E2E
	// Keys, when set, supplies verified key records of nodes this node has
	// not opened a circuit to yet, so the first circuit uses the
	// one-message handshake. Without it (or when it has none) the first
	// circuit to a node takes the full handshake, and the record learned is
	// cached.
	Keys KeyLookup

	// Policy is the authorization policy (package node/policy): which
	// sources may open which services on this node ("dial" rules, checked
	// against the source authenticated end to end) and which circuits it
	// relays ("relay" rules). Nil, or no rule of a kind, allows everything
	// of that kind (Start logs a warning when there is no rule at all); a
	// kind with at least one rule denies what none of them allows.
	// SetPolicy replaces it at run time.
	Policy *policy.Policy

	// Limits bounds the tables and queues whose bounds are configurable;
	// the others are bounded by constants (docs/SECURITY.md, Limits).
	// Zero fields mean defaults.
	Limits Limits
	// Routing tunes the routing engine. Zero fields mean defaults.
	Routing RoutingConfig
	// Discovery enables memberlist gossip discovery when BindAddr is set.
	Discovery DiscoveryConfig

	// GracePeriod is how long Close drains: it lets open circuits finish
	// (neighbours already route new ones around this node) before resetting
	// them. Default 5s; a negative value means no wait.
	GracePeriod time.Duration
	// DialTimeout bounds Dial when the caller's context has no deadline.
	// Default 10s.
	DialTimeout time.Duration

	// RouteWait is how long Dial, and a relay forwarding a circuit, wait
	// for routing to replace a lost route to a node it knows of or lost
	// within the last minute (a retraction and its seqno request take a
	// few round trips) before refusing with no route. A name routing
	// never heard of is refused at once. It is also how long a lost route
	// to a peer that a neighbour still advertises goes unreported
	// (Subscribe). Default 2s; negative disables the wait.
	RouteWait time.Duration

	// ResumeTimeout is how long a circuit whose path broke (a relay died,
	// a link was lost, or nothing arrived for max(2 s, 8 × RTT) while the
	// other end owed an acknowledgement: circuit.ErrNoProgress) waits for a new path before it fails with
	// circuit.ErrResumeTimeout; its application sees nothing meanwhile.
	// At the source the timeout counts from the suspension after the last
	// path that moved data, and a circuit whose resumed paths fail
	// circuit.MaxResumesWithoutProgress times in a row before anything
	// moved on them fails with circuit.ErrResumeLoop (docs/PROTOCOL.md §3.9).
	// Circuits this node dials are resumable unless DialOptions.NoResume
	// is set or end-to-end security is off. Default 30s; negative: the
	// node dials no resumable circuits (it still accepts them, waiting the
	// default).
	ResumeTimeout time.Duration

	// TracerProvider receives a span per hop. Default: no-op.
	TracerProvider trace.TracerProvider
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger

	// NewTransport replaces the QUIC transport, for simulation with
	// in-memory links (package links/memlink). It is called once by Start
	// with the handler that must receive the transport's link events.
	NewTransport func(h links.Handler, role links.Role) (links.Transport, error)

	// hooks make a node misbehave, for attack tests; nil in real nodes.
	hooks *hooks
}

// hooks turn a node into a malicious one in tests.
type hooks struct {
	// relay replaces the two streams of every relayed circuit (in: from the
	// previous hop, out: to the next) before the splice.
	relay func(in, out links.Stream) (links.Stream, links.Stream)
	// claim makes the node accept circuits addressed to dest as if it were
	// dest (a node that attracted another's route).
	claim func(dest string) bool
	// strikes sizes the replay register (seal.NewStrikes; 0: the default),
	// so that a test fills it with a few hundred opens.
	strikes int
	// strikeWindow is how long the replay register remembers a first
	// message (0: the default), so that a slow test's early opens are
	// still held when it counts them.
	strikeWindow time.Duration
	// forgetSessions makes a destination refuse every resumed handshake
	// with Retry, as one that has forgotten the session.
	forgetSessions bool
	// beforeRetry runs before a Dial opens again after a refused
	// handshake (a test stores a new ticket then, as a concurrent open's
	// reply would).
	beforeRetry func()
	// resume answers the resume opens of circuits ending here in place
	// of the node's table of resumable circuits (a destination that lies
	// in its resumed frame).
	resume func(p circuit.Path, o *circuit.Open)
	// exactResumeTable sizes the table of resumable circuits to what the
	// limits admit without the floor of circuit.MaxResumablePerSource and
	// circuit.MaxResumable, so that a test with lowered limits fills it
	// with a few circuits.
	exactResumeTable bool
	// midIdentity runs in SetIdentity after the new identity is stored
	// and before its end-to-end keys are (a test runs another change
	// there).
	midIdentity func(id *identity.Identity)
	// startStopped runs in Close once it has asked a Start under way to
	// stop, before it waits for the start to end.
	startStopped func()
}

// Limits bounds the node's resources. Beyond a limit a circuit is refused
// with an "overloaded" result; nothing grows without bound.
type Limits struct {
	// MaxCircuits bounds circuits open at this node in total (local ends
	// plus relayed). Default 16384.
	MaxCircuits int
	// MaxCircuitsPerLink bounds circuit streams on one link (also the QUIC
	// incoming stream limit). Its last sixteenth goes to a circuit relayed
	// out on the link only from an incoming link of which fewer than a
	// sixteenth of that reserve go out on it, so that one neighbour cannot
	// take a next hop's whole limit. Default 4096, at most
	// links.MaxMaxStreams (2^60 - 1): New refuses more.
	MaxCircuitsPerLink int
	// MaxCircuitsPerSource bounds circuits from one source node through or
	// to this node. A relay counts a circuit that a neighbour claims to
	// relay for a source (hop > 0; the source's name is only claimed
	// there) against that source along the exact relays the open's path
	// names, and the claims for the source along the same relays but the
	// first together against twice the limit. Relays check that the path
	// ends with the neighbour, so a router forging the source, however
	// many hops away, is named in the path of its forgeries: it gets at
	// most the limit in the source's twice, and none of the source's
	// limit along its own path. A source whose circuits come along paths
	// that differ beyond their first relay holds up to the limit along
	// each. A destination counts unsealed circuits (E2E off) the same
	// way. Default 1024.
	MaxCircuitsPerSource int
	// MaxPendingOpens bounds streams whose open header is still being read.
	// Default 256.
	MaxPendingOpens int
	// MaxPendingOpensPerLink bounds such streams from one link, so that a
	// neighbour that sends headers slowly cannot hold the slots of the
	// others. Default a quarter of MaxPendingOpens (64).
	MaxPendingOpensPerLink int
	// FullHandshakes bounds the full (XX) end-to-end handshakes this node
	// answers as a destination, per second (a token bucket holding as
	// many): each costs three X25519 operations and can be sent by a
	// neighbour that does none, so the first message is refused
	// ("overloaded") over the budget, before any cryptography. A
	// one-message (IK) first message that fails to decrypt spends the
	// budget too. Default 512.
	FullHandshakes int
	// FullHandshakesPerLink is that budget for the opens arriving on one
	// link; one-message first messages that fail to decrypt spend a
	// budget of their own of as many per link. Default a quarter of
	// FullHandshakes (128).
	FullHandshakesPerLink int
	// RelayFullHandshakesPerLink bounds, per second, per incoming link
	// and per destination that is this node's neighbour, the sealed
	// opens this node relays whose first message is a full (XX) one: the
	// destination charges those to its budget above for the link they
	// reach it on, this node's, whatever source they claim. Over it the
	// open is refused ("overloaded") before it is forwarded, so that one
	// neighbour spends at most this much of the budget a destination
	// gives everyone behind this relay. Relays further from the
	// destination do not count them. The one-message (IK) first messages
	// relayed so that the destination answers them retry or overloaded
	// (a stale key, a replay, bytes that do not decrypt: the destination
	// charges those that fail to its budget of failed one-message
	// handshakes for this node's link) are bounded apart at the same
	// rate, with a burst of the larger of FullHandshakesPerLink and
	// MaxCircuitsPerSource: each holds a token from its forwarding until
	// the destination's answer, given back unless the answer is retry or
	// overloaded. Each budget is split by entry, the node the incoming
	// link's peer names before itself on the open's path (the source when
	// the peer is the first relay or the source), and each entry's share
	// again by the node the entry names before itself, and that one's by
	// the node before it (the source where the path goes back no
	// further): each share holds a quarter of the rate and burst of what
	// it is part of (at least one token), and an open past its share
	// draws on what it is part of only while a reserve is left there for
	// the others (a quarter of its burst and one token more, held on top
	// of the burst), so that one node behind the peer, up to three back,
	// spends no more of what everyone behind the peer shares. Default a
	// quarter of FullHandshakesPerLink (32).
	RelayFullHandshakesPerLink int
	// OneMessageHandshakesPerSource bounds the one-message (IK) end-to-end
	// handshakes this node completes as a destination for one source, per
	// second, counted by the source the handshake authenticated (a token
	// bucket holding MaxCircuitsPerSource, so that a burst of opens the
	// per-source circuit limit allows is never refused). Each costs this
	// node three or four X25519 operations and its source two. Over it the
	// open is refused ("overloaded"), and further first messages naming
	// that source are refused before any cryptography until the budget
	// refills; a first message naming a source can only spend that
	// source's budget once the handshake proved it. Resumed opens do not
	// count. Default FullHandshakesPerLink (128).
	OneMessageHandshakesPerSource int
	// RefusedOpensPerSource bounds, per second, the opens this node
	// refuses itself (as the destination or as a relay: no service, no
	// route, denied by policy, a failed handshake, a source at its own
	// circuit or handshake budget) for one source, counted by the source
	// as the link proved it (hop 0) or as claimed along the open's path
	// (a token bucket holding MaxCircuitsPerSource); the claims entering
	// the last relay from one of its neighbours (hop 2 and more) together
	// hold eight times as much. Beyond it every open of that source (or
	// entering there) is refused "overloaded" as soon as its header is
	// read, before anything else is done for it; the link is not charged
	// (such a stream is named, so it never counts against
	// links.QUICConfig.StreamAborts). Refusals at bounds
	// others share (the node's, a link's, shutting down, retry) are not
	// counted. Default 64; negative means no budget.
	RefusedOpensPerSource int
	// MaxHeaderSize bounds an open or result header. Default 4096 bytes.
	MaxHeaderSize int
	// MaxRoutes bounds the routing table. Default 4096.
	MaxRoutes int
	// HeaderTimeout bounds the time to receive an open header. Default 5s.
	// A Dial waits as long for the answer through one next hop before it
	// tries another one left beside it (Node.Dial).
	HeaderTimeout time.Duration
	// RelayBuffer is the per-direction copy buffer of a relayed circuit:
	// at least 1 KiB and at most the stream window (StreamWindow or its
	// default), more than a relay's read of a circuit ever returns, or
	// the default where that is larger. Default 32 KiB.
	RelayBuffer int
	// RelayStall bounds how long a relayed circuit may wait on a reader
	// that stopped reading (a write with no progress). Default 2 min;
	// negative means no bound. The relay's splice acts on this bound and
	// RelayHalfClosed up to a quarter of the smaller one late, or 10 ms
	// for bounds under 40 ms (circuit.SpliceBounds).
	RelayStall time.Duration
	// RelayHalfClosed bounds how long a relayed circuit may stay
	// half-closed with the open direction silent. Default 2 min; negative
	// means no bound.
	RelayHalfClosed time.Duration
	// LinkWindow bounds the bytes one link may hold in this node's
	// receive buffers, all its circuits together (the QUIC connection
	// window). Default the larger of 32 MiB and 4 × StreamWindow; at
	// most MaxLinkWindow. The
	// circuits of one source, and those a relay carries from one
	// neighbour whatever sources they name, may hold at most half of it
	// unread: once they
	// hold more, those holding the most are reset with
	// circuit.CloseStalled (see ReaderStall).
	LinkWindow uint64
	// StreamWindow bounds the bytes one circuit may have in flight toward
	// this node on a link (the QUIC stream window, at least
	// links.MinStreamWindow and at most LinkWindow/4). Default 4 MiB, or
	// a quarter of a LinkWindow set below 16 MiB.
	StreamWindow uint64
	// ReaderStall is how long a circuit's reader at this node (the
	// service, or a relay's next hop) may make no progress before the
	// circuit counts as stalled. When the stalled circuits of a link could
	// hold more than half of LinkWindow, the longest stalled (then the
	// largest) are reset with circuit.CloseStalled until the rest fit; see
	// links.QUICConfig.ReaderStall for what that bounds. Default 2 s.
	ReaderStall time.Duration
	// ResumeBuffer bounds the memory the buffers of the resumable
	// circuits ending at this node hold together (receive queues, a
	// received record held unread, and retransmit buffers, up to a window
	// each way per circuit, with a path or waiting for one). When a source asks for more while it is
	// full, the circuit holding the most of the source that holds the most
	// (its oldest waiting for a resume first) is reset, if that source
	// holds more than the asking one would; else the asking circuit is.
	// Reset circuits fail with circuit.ErrBufferBudget here and
	// circuit.ErrStalled at the source. Default 256 MiB.
	//
	// The resumable circuits this node dials have a budget of their own
	// of the same size, with ResumeBufferPerSource the share of each
	// destination: beyond either (less a sixteenth) their Writes wait for
	// room; what they receive is counted but ends none of them.
	ResumeBuffer int
	// ResumeBufferPerSource is the most one source's resumable circuits
	// may hold of ResumeBuffer; a circuit that would take its source
	// beyond is reset. Default a quarter of ResumeBuffer, at least
	// MinResumeBuffer; a smaller value (or a ResumeBuffer below
	// MinResumeBuffer) fails New with ErrInvalidConfig.
	ResumeBufferPerSource int
	// ResumeResendPerSource bounds, in bytes a second, what the resumes
	// of one source have the resumable circuits ending here send again
	// (what they had sent beyond the offset each resume says the source
	// received: a source may resume as often as it likes, each time
	// saying it received nothing). Each resume taken draws what it has
	// its circuit send again from the source's bucket, which holds
	// ResumeBufferPerSource bytes (the most the source's circuits can
	// hold unacknowledged here, so that a full bucket never holds back a
	// reroute of all of them) and earns this rate; it may go into debt. While it is,
	// the source's resume opens are refused with circuit.Overloaded,
	// which a resuming source retries until its resume timeout.
	// Default an eighth of ResumeBufferPerSource (8 MiB a second): a
	// spent bucket refills in 8 s.
	ResumeResendPerSource int
	// MaxParked bounds the resumable circuits ending here that wait for a
	// new path; beyond it the oldest waiting circuit that this node's
	// application closed, of the source with the most such, is reset (it
	// waits only to send its tail to that source), else the oldest
	// waiting circuit of the source with the most waiting. Default 1024.
	MaxParked int
	// MaxParkedPerSource bounds those of one source; beyond it the
	// source's oldest waiting circuit that this node's application
	// closed is reset, else its oldest waiting circuit. Default 64.
	MaxParkedPerSource int
	// StreamAborts is each neighbour's budget of circuit streams that end
	// without an open (reset before or during their open header, empty,
	// truncated, malformed or forged): a token bucket of StreamAborts,
	// refilled at an eighth of it a second, kept by neighbour name.
	// Beyond it the link is closed (close code 0x106, errors wrapping
	// links.ErrStreamAborts) and the neighbour's links are refused until
	// its bucket is full again; see links.QUICConfig.StreamAborts. It
	// applies to the QUIC transport the node starts, not to one
	// Config.NewTransport makes. Default (zero) the larger of 4,096
	// (links.DefaultStreamAborts) and MaxCircuitsPerLink.
	StreamAborts int
}

// RoutingConfig tunes the routing engine (see package routing).
type RoutingConfig struct {
	// UpdateInterval is the periodic full refresh. Default 4s.
	UpdateInterval time.Duration
	// Hysteresis: switch next hop only when better by more than this many
	// cost units. Default: the routing package default.
	Hysteresis uint32
}

// DiscoveryConfig configures memberlist gossip discovery and the policy
// that turns members into links (package node/topology).
type DiscoveryConfig struct {
	// BindAddr is the memberlist gossip address (TCP and UDP), HOST:PORT
	// with a port from 0 to 65535. Empty disables discovery.
	BindAddr string
	// AdvertiseAddr is the gossip address announced to others, an
	// IP:PORT (memberlist takes no host name) at which the other members
	// reach this node's gossip, TCP and UDP: for a node behind NAT or a
	// port forward. Default BindAddr (with an unspecified IP, the
	// address that reaches the members to join, else memberlist's pick).
	// ParseAdvertiseAddr says which values are refused.
	AdvertiseAddr string
	// LinkAdvertiseAddr is the QUIC link address announced to others in
	// this node's signed gossip metadata, an IP:PORT at which the other
	// members reach its links: for a node behind NAT, a port forward
	// (external port other than the local one) or in a container.
	// Default: the transport's address, with an unspecified IP replaced
	// by the announced gossip address's IP. Only for a transport of IP
	// addresses (QUIC); ParseAdvertiseAddr says which values are refused.
	LinkAdvertiseAddr string
	// Join lists members to join: gossip addresses HOST:PORT, or
	// "dns:NAME[:PORT]" (every A/AAAA record of NAME, port default the
	// local gossip port) or "dns+srv:NAME" (the SRV records of NAME, e.g.
	// _gossip._udp.circuitmesh.ns.svc). Names are resolved again every
	// JoinInterval and new addresses joined. New refuses an entry with an
	// empty name or a port not from 1 to 65535 (ErrInvalidConfig and
	// ErrBadJoin).
	Join []string
	// JoinInterval is how often Join is resolved and retried. Default
	// 30s; New refuses a negative one.
	// While the node knows no other member it retries sooner: after 1 s,
	// then twice as long each time, up to JoinInterval.
	JoinInterval time.Duration
	// Resolver resolves dns: and dns+srv: joins. Default net.DefaultResolver.
	Resolver *net.Resolver
	// Key is the gossip encryption key (16, 24 or 32 bytes). Empty means
	// unencrypted gossip, which is logged as a warning.
	Key []byte
	// LinkPolicy, when set, excludes members it rejects from the links
	// discovery makes (they are neither dialled nor repaired toward).
	LinkPolicy func(peer Member) bool
	// TargetLinks is the degree a router aims for (incoming plus
	// outgoing links made by discovery). Default 7, or MaxLinks if that
	// is set and smaller.
	TargetLinks int
	// MaxLinks is the hard bound on links, incoming and outgoing, static
	// links excluded: a link beyond it is refused as it comes up, and
	// discovery dials only into free slots. Default the larger of 10 and
	// 2×TargetLinks (14 with the default TargetLinks).
	MaxLinks int
	// StaticInLinks is how many incoming links that their dialler keeps
	// as static (its hello says so: links.FeatureStatic) are kept on top
	// of MaxLinks, the oldest first; beyond that such links count like any
	// other. The claim costs a peer nothing, hence the bound. Default 4;
	// negative means none.
	StaticInLinks int
	// LongLinks is how many of the TargetLinks are random long links
	// (small-world shortcuts). Default 1 (none when TargetLinks is 1);
	// negative means none. New refuses one of TargetLinks or more: a
	// router keeps at least one near link.
	LongLinks int
	// LeafLinks is how many nearby routers a leaf links to. Default 2;
	// New refuses a negative one.
	LeafLinks int
	// Interval is how often the link policy runs besides membership, link
	// and route events. Default 2s; New refuses a negative one.
	Interval time.Duration
	// Transport, when set, carries gossip instead of memberlist's UDP and
	// TCP sockets on BindAddr (package simulate gives one over its
	// simulated network). BindAddr is still required: its port is the
	// default port of Join addresses. One Transport serves one Start;
	// Close shuts it down, also when gossip never started on it (Close
	// before Start, a Start that failed, or an empty BindAddr).
	Transport memberlist.NodeAwareTransport
}

// Member is a node announced by gossip.
type Member struct {
	Name     string
	LinkAddr string // UDP address of its QUIC links
	Leaf     bool
}

// Validation errors.
var (
	ErrInvalidConfig = errors.New("invalid node configuration")
)

// MaxLinkWindow is the largest Limits.LinkWindow, 2^62 - 1: QUIC sends
// a link's window as a variable-length integer (RFC 9000, section 16)
// and cannot send more. New refuses a larger one, and a StreamWindow
// above a quarter of it.
const MaxLinkWindow = links.MaxLinkWindow

// defaultRelayBuffer is Limits.RelayBuffer's default.
const defaultRelayBuffer = 32 << 10

// streamWindow is the stream window of the node's QUIC links: StreamWindow,
// or its default (links.QUICConfig.MaxStreamWindow).
func (l Limits) streamWindow() uint64 {
	switch {
	case l.StreamWindow > 0:
		return l.StreamWindow
	case l.LinkWindow > 0:
		return min(links.DefaultMaxStreamWindow, l.LinkWindow/4)
	}
	return links.DefaultMaxStreamWindow
}

func (c *Config) setDefaults() {
	if c.Mesh == "" {
		if c.Identity != nil && c.Identity.Mesh != "" {
			c.Mesh = c.Identity.Mesh
		} else {
			c.Mesh = DefaultMesh
		}
	}
	if c.Name == "" && c.Identity != nil {
		c.Name = c.Identity.Node
	}
	if c.ListenAddr == "" {
		c.ListenAddr = "127.0.0.1:0"
	}
	if c.GracePeriod == 0 {
		c.GracePeriod = 5 * time.Second
	}
	if c.RouteWait == 0 {
		c.RouteWait = 2 * time.Second
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	l := &c.Limits
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&l.MaxCircuits, 16384)
	def(&l.MaxCircuitsPerLink, 4096)
	def(&l.MaxCircuitsPerSource, 1024)
	def(&l.MaxPendingOpens, 256)
	def(&l.MaxPendingOpensPerLink, max(1, l.MaxPendingOpens/4))
	def(&l.FullHandshakes, 512)
	def(&l.FullHandshakesPerLink, max(1, l.FullHandshakes/4))
	def(&l.RelayFullHandshakesPerLink, max(1, l.FullHandshakesPerLink/4))
	def(&l.OneMessageHandshakesPerSource, l.FullHandshakesPerLink)
	def(&l.MaxHeaderSize, 4096)
	def(&l.MaxRoutes, 4096)
	def(&l.RelayBuffer, defaultRelayBuffer)
	def(&l.ResumeBuffer, DefaultResumeBuffer)
	def(&l.ResumeBufferPerSource, max(MinResumeBuffer, l.ResumeBuffer/4))
	def(&l.ResumeResendPerSource, max(1, l.ResumeBufferPerSource/8))
	def(&l.MaxParked, DefaultMaxParked)
	def(&l.MaxParkedPerSource, DefaultMaxParkedPerSource)
	if l.HeaderTimeout == 0 {
		l.HeaderTimeout = 5 * time.Second
	}
	if l.RelayStall == 0 {
		l.RelayStall = 2 * time.Minute
	}
	if l.RelayHalfClosed == 0 {
		l.RelayHalfClosed = 2 * time.Minute
	}
	d := &c.Discovery
	if d.TargetLinks == 0 && d.MaxLinks > 0 {
		d.TargetLinks = min(topology.DefaultTarget, d.MaxLinks)
	}
	def(&d.TargetLinks, topology.DefaultTarget)
	def(&d.MaxLinks, max(topology.DefaultMax, 2*d.TargetLinks))
	def(&d.LeafLinks, topology.DefaultLeaf)
	if d.JoinInterval == 0 {
		d.JoinInterval = 30 * time.Second
	}
	if d.Interval == 0 {
		d.Interval = 2 * time.Second
	}
}

// checkNames refuses a Name or Mesh that breaks identity.ValidateName,
// before an identity is made or loaded with them.
func (c *Config) checkNames() error {
	for _, f := range [...]struct{ field, name string }{{"Name", c.Name}, {"Mesh", c.Mesh}} {
		if f.name == "" {
			continue // Name is required (validate); Mesh has its default
		}
		if err := identity.ValidateName(f.name); err != nil {
			return fmt.Errorf("%w: %s is not a valid name: %w", ErrInvalidConfig, f.field, err)
		}
	}
	return nil
}

// checkAddrs refuses a ListenAddr the node would listen on and a
// Discovery.BindAddr that have no port, or one a socket cannot take:
// Start failed on them. On QUIC links it refuses a StaticLinks entry
// with no port or port 0 too, which the node would redial forever
// (another transport's addresses, such as in-memory links' node names,
// are its own), and on any transport a Discovery.Join entry CheckJoin
// refuses, which the node would retry every JoinInterval.
func (c *Config) checkAddrs() error {
	if c.PacketConn == nil && c.NewTransport == nil {
		if err := CheckQUICAddr(c.ListenAddr, true); err != nil {
			return fmt.Errorf("%w: ListenAddr %w", ErrInvalidConfig, err)
		}
	}
	if c.NewTransport == nil {
		for i, a := range c.StaticLinks {
			if err := CheckQUICAddr(a, false); err != nil {
				return fmt.Errorf("%w: StaticLinks[%d] %w", ErrInvalidConfig, i, err)
			}
		}
	}
	for i, j := range c.Discovery.Join {
		if err := CheckJoin(j); err != nil {
			return fmt.Errorf("%w: Discovery.Join[%d] is not a join address: %w", ErrInvalidConfig, i, err)
		}
	}
	if a := c.Discovery.BindAddr; a != "" {
		if err := CheckGossipAddr(a); err != nil {
			return fmt.Errorf("%w: Discovery.BindAddr %w", ErrInvalidConfig, err)
		}
	}
	return nil
}

// CheckQUICAddr refuses, as New does on QUIC links, a ListenAddr (listen)
// or StaticLinks entry addr that is no UDP HOST:PORT (PORT a number or a
// service name), or, for a static link, has port 0, which is no node's.
// A program building a Config from its own flags can name the flag.
func CheckQUICAddr(addr string, listen bool) error {
	_, port, err := net.SplitHostPort(addr)
	var p int
	if err == nil {
		p, err = net.LookupPort("udp", port)
	}
	if err == nil && p == 0 && !listen {
		err = errors.New("port 0 is no node's")
	}
	if err != nil {
		return fmt.Errorf("%q is not a UDP HOST:PORT: %w", addr, err)
	}
	return nil
}

// CheckGossipAddr refuses, as New does, a Discovery.BindAddr that is no
// HOST:PORT with a port number from 0 to 65535.
func CheckGossipAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return fmt.Errorf("%q is not a HOST:PORT with a port from 0 to 65535: %w", addr, err)
	}
	return nil
}

func (c *Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if c.Name == "" {
		return bad("Name is required")
	}
	if err := c.checkAddrs(); err != nil {
		return err
	}
	if c.Identity != nil && c.Identity.Node != c.Name {
		return bad("Name %q does not match the identity's node name %q", c.Name, c.Identity.Node)
	}
	if c.Identity != nil && c.Identity.Mesh != c.Mesh {
		return bad("Mesh %q does not match the identity's mesh %q", c.Mesh, c.Identity.Mesh)
	}
	l := c.Limits
	for name, v := range map[string]int{
		"MaxCircuits": l.MaxCircuits, "MaxCircuitsPerLink": l.MaxCircuitsPerLink,
		"MaxCircuitsPerSource": l.MaxCircuitsPerSource, "MaxPendingOpens": l.MaxPendingOpens,
		"MaxHeaderSize": l.MaxHeaderSize, "MaxRoutes": l.MaxRoutes, "RelayBuffer": l.RelayBuffer,
		"MaxPendingOpensPerLink": l.MaxPendingOpensPerLink,
		"ResumeBuffer":           l.ResumeBuffer, "ResumeBufferPerSource": l.ResumeBufferPerSource,
		"ResumeResendPerSource": l.ResumeResendPerSource,
		"MaxParked":             l.MaxParked, "MaxParkedPerSource": l.MaxParkedPerSource,
		"FullHandshakes": l.FullHandshakes, "FullHandshakesPerLink": l.FullHandshakesPerLink,
		"RelayFullHandshakesPerLink": l.RelayFullHandshakesPerLink, "OneMessageHandshakesPerSource": l.OneMessageHandshakesPerSource,
		"StreamAborts": l.StreamAborts,
	} {
		if v < 0 {
			return bad("Limits.%s must not be negative (got %d)", name, v)
		}
	}
	if l.MaxHeaderSize < 256 {
		return bad("Limits.MaxHeaderSize %d is below the 256-byte minimum", l.MaxHeaderSize)
	}
	if l.ResumeBuffer < MinResumeBuffer || l.ResumeBufferPerSource < MinResumeBuffer {
		return bad("Limits.ResumeBuffer %d and Limits.ResumeBufferPerSource %d must be at least MinResumeBuffer (%d: two resume windows and the records a circuit may hold unread)",
			l.ResumeBuffer, l.ResumeBufferPerSource, MinResumeBuffer)
	}
	if l.StreamWindow > 0 && l.LinkWindow > 0 && l.StreamWindow > l.LinkWindow/4 {
		return bad("Limits.StreamWindow %d is more than a quarter of Limits.LinkWindow %d", l.StreamWindow, l.LinkWindow)
	}
	if l.StreamWindow > 0 && l.StreamWindow < links.MinStreamWindow {
		return bad("Limits.StreamWindow %d is below links.MinStreamWindow (%d)", l.StreamWindow, links.MinStreamWindow)
	}
	if l.LinkWindow > 0 && l.LinkWindow < 4*links.MinStreamWindow {
		return bad("Limits.LinkWindow %d is below 4 × links.MinStreamWindow (%d)", l.LinkWindow, 4*links.MinStreamWindow)
	}
	if l.MaxCircuitsPerLink > links.MaxMaxStreams {
		return bad("Limits.MaxCircuitsPerLink %d is above links.MaxMaxStreams (%d, the most streams QUIC can grant a link less its control stream)", l.MaxCircuitsPerLink, links.MaxMaxStreams)
	}
	if l.LinkWindow > MaxLinkWindow {
		return bad("Limits.LinkWindow %d is above MaxLinkWindow (%d, the largest window QUIC can send)", l.LinkWindow, uint64(MaxLinkWindow))
	}
	if l.StreamWindow > MaxLinkWindow/4 {
		return bad("Limits.StreamWindow %d is above a quarter of MaxLinkWindow (%d)", l.StreamWindow, uint64(MaxLinkWindow/4))
	}
	if l.RelayBuffer < 1024 {
		return bad("Limits.RelayBuffer %d is below the 1024-byte minimum", l.RelayBuffer)
	}
	if w := max(l.streamWindow(), defaultRelayBuffer); uint64(l.RelayBuffer) > w {
		return bad("Limits.RelayBuffer %d is above the stream window %d (Limits.StreamWindow): a relay's read of a circuit never returns more", l.RelayBuffer, w)
	}
	for _, d := range [...]struct {
		field string
		v     time.Duration
	}{
		{"DialTimeout", c.DialTimeout}, {"Limits.HeaderTimeout", l.HeaderTimeout}, {"Limits.ReaderStall", l.ReaderStall},
		{"Routing.UpdateInterval", c.Routing.UpdateInterval},
		{"Discovery.JoinInterval", c.Discovery.JoinInterval}, {"Discovery.Interval", c.Discovery.Interval},
	} {
		if d.v < 0 {
			return bad("%s must not be negative (got %v)", d.field, d.v)
		}
	}
	if d := c.Discovery; d.LeafLinks < 0 {
		return bad("Discovery.LeafLinks must not be negative (got %d)", d.LeafLinks)
	} else if d.LongLinks > 0 && d.LongLinks >= d.TargetLinks {
		return bad("Discovery.LongLinks %d must be below Discovery.TargetLinks %d: a router keeps at least one near link", d.LongLinks, d.TargetLinks)
	}
	if len(c.LinkCosts) > MaxLinkCostPins {
		return bad("LinkCosts has %d peers, more than MaxLinkCostPins (%d)", len(c.LinkCosts), MaxLinkCostPins)
	}
	for peer, cost := range c.LinkCosts {
		if err := identity.ValidateName(peer); err != nil {
			return fmt.Errorf("%w: LinkCosts[%q] is not a node name: %w", ErrInvalidConfig, peer, err)
		}
		if cost < links.MinCost || cost > MaxLinkCost {
			return bad("LinkCosts[%q] = %d: want %d to %d", peer, cost, links.MinCost, MaxLinkCost)
		}
	}
	if c.E2E != E2EOn && c.E2E != E2EOff {
		return bad("E2E must be E2EOn or E2EOff (got %d)", int(c.E2E))
	}
	if d := c.Discovery; d.TargetLinks < 1 || d.MaxLinks < d.TargetLinks {
		return bad("Discovery.MaxLinks %d must be at least Discovery.TargetLinks %d (at least 1)", d.MaxLinks, d.TargetLinks)
	}
	for _, f := range [...]struct{ field, addr string }{{"Discovery.AdvertiseAddr", c.Discovery.AdvertiseAddr}, {"Discovery.LinkAdvertiseAddr", c.Discovery.LinkAdvertiseAddr}} {
		if f.addr == "" {
			continue
		}
		if _, err := ParseAdvertiseAddr(f.addr); err != nil {
			return fmt.Errorf("%s: %w", f.field, err)
		}
	}
	if k := len(c.Discovery.Key); k != 0 && k != 16 && k != 24 && k != 32 {
		return bad("Discovery.Key must be 16, 24 or 32 bytes (got %d)", k)
	}
	return nil
}
