package node

import (
	"bufio"
	"bytes"
	"compress/lzw"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/ratelog"
)

// ErrGossipRefused wraps the reasons the gossip guard refuses a stream
// before memberlist reads it.
var ErrGossipRefused = errors.New("gossip message refused")

// memberlist's message types (memberlist v0.7.0 net.go; the values are
// part of its wire protocol).
const (
	gmPing         = 0
	gmIndirectPing = 1
	gmAck          = 2
	gmSuspect      = 3
	gmDead         = 5
	gmPushPull     = 6
	gmCompound     = 7
	gmUser         = 8
	gmCompress     = 9
	gmEncrypt      = 10
	gmNack         = 11
	gmHasCrc       = 12
	gmErr          = 13
	gmHasLabel     = 244
	gmLZW          = 0 // compress.Algo: LZW, LSB order, literal width 8
)

// Bounds of the gossip guard.
const (
	// gossipPacketMax bounds a gossip datagram, on the wire and once
	// decompressed. memberlist fills a packet up to its UDPBufferSize
	// (1,400 bytes in the configuration discovery uses) before it
	// compresses, checksums or encrypts it; one message alone may pass
	// that (an ack carries up to coordSize of payload).
	gossipPacketMax = 2 * 1400
	// gossipPacketParts bounds the messages of one compound datagram:
	// the smallest broadcast memberlist piggybacks (a dead or suspect
	// message) takes about 30 bytes, so a packet of UDPBufferSize holds
	// fewer than 50.
	gossipPacketParts = 64
	// gossipStreamMax bounds the bytes memberlist reads from a
	// plaintext stream (decompressed, when compressed): memberlist's own
	// bound on an encrypted push-pull (maxPushStateBytes).
	gossipStreamMax = 20 << 20
	// gossipStreams bounds the inbound gossip streams open at once.
	// While one is free, a new stream takes it, whatever its source
	// prefix; when they are all open, a new one may take the slot of
	// another stream (see streamSlots), and if none gives way it is
	// closed as soon as it is accepted.
	gossipStreams = 16
	// gossipStreamShare is the inbound streams of one source prefix (an
	// IPv4 address, an IPv6 /64: links.SourcePrefix) that hold their
	// slots against other prefixes: when all slots are taken, a stream of
	// a prefix holding fewer takes the slot of one of a prefix holding
	// more than its share (streamSlots).
	gossipStreamShare = gossipStreams / 4
	// gossipFirstBytes is how long an inbound stream may take to send
	// the bytes the guard inspects (its first message's type and a
	// push-pull's header; an encrypted stream's type and length) and
	// still keep its slot when a new stream needs one: an honest member
	// sends them at once, but on a starved machine it may take longer, so
	// a stream later than that keeps its slot while no new stream needs
	// it, up to memberlist's own deadline (TCPTimeout, 10 s).
	gossipFirstBytes = 2 * time.Second
	// gossipHeaderMax bounds a push-pull header (memberlist's is about
	// 40 bytes).
	gossipHeaderMax = 256
	// gossipPingMax bounds a ping sent on a stream (memberlist's TCP
	// ping), encoded: a member's is under 700 bytes (two node names of at
	// most 255 bytes, an address of 4 or 16, a sequence number, a port and
	// the field names).
	gossipPingMax = 1 << 10
	// gossipAnswerMax bounds, encoded, an error answer (memberlist's
	// errResp, in place of a push-pull's state) or a stream ping's ack
	// on a stream this node opened: memberlist's error texts, and the
	// guard's, are under 512 bytes, and an ack carries at most coordSize
	// of payload. memberlist decodes either as it comes, growing the
	// text or payload in steps of 256 KiB, each a copy of all before it:
	// one of 20 MiB (its bound on a stream) had the node allocate over a
	// GiB, and an error's text went whole into the join's error and the
	// log line that reports it.
	gossipAnswerMax = 4 << 10
	// gossipStateMax bounds one state of a plaintext push-pull, encoded:
	// a member's is under 1 KiB (its metadata at most MetaMaxSize, 512
	// bytes; its address 4 or 16; its name at most 255; six version
	// bytes; the field names).
	gossipStateMax = 4 << 10
	// gossipPushSlack is the states an inbound push-pull may announce
	// beyond the members this node knows: a node that knows few (a seed
	// restarted with nothing to join, the smaller side of a partition
	// that healed) takes a larger mesh's state from the members that
	// push it theirs.
	gossipPushSlack = 1024
	// gossipSealedState bounds what one member's state adds to an
	// encrypted stream: an honest state is under 1 KiB encoded, and the
	// LZW compression memberlist applies before it encrypts may expand
	// what does not compress by half (12-bit codes for 8-bit bytes).
	gossipSealedState = 1536
	// gossipSealedExtra is what an encrypted stream carries besides its
	// states: the push-pull's type and header, the compressed message's
	// framing, the cipher's version, nonce and tag.
	gossipSealedExtra = 4 << 10
	// gossipHeld bounds the bytes memberlist holds at once for the
	// streams it reads, inbound and the answers to the push-pulls this
	// node starts: an encrypted stream's announced length
	// (memberlist reads it whole before it decrypts it, so a stranger
	// without the key has it held as surely as a key holder), and a
	// plaintext push-pull's states (memberlist decodes all of them before
	// it merges any) with the slice it allocates for them. A stream that
	// would take the node beyond it takes the bytes of streams of a source
	// prefix holding more than gossipHeldShare, or is refused (heldBytes).
	gossipHeld = 16 << 20
	// gossipHeldShare is the bytes of gossipHeld the inbound streams of
	// one source prefix hold against other prefixes.
	gossipHeldShare = gossipHeld / 4
)

// gossipPushStateSize is what memberlist allocates for each state a
// push-pull header announces before it reads the first (its
// pushNodeState, of which gossipPushState is a copy).
const gossipPushStateSize = int64(unsafe.Sizeof(gossipPushState{}))

// gossipGuard wraps memberlist's transport: it inspects each plaintext
// packet and stream before memberlist decodes it, and refuses what no
// honest member sends: datagrams beyond gossipPacketMax, compressed
// messages expanding beyond their bound, compounds nested or of more than
// gossipPacketParts messages, push-pull headers announcing more states
// than the member bound (maxMembers), push-pulls with a state beyond
// gossipStateMax, streams of user messages (discovery
// sends none; memberlist allocates what their header announces before
// reading it), error answers and acks beyond gossipAnswerMax on streams
// this node opened, and inbound streams beyond gossipStreams at once, a
// prefix holding more than gossipStreamShare of them or a stream whose
// first bytes did not come within gossipFirstBytes giving way to new ones
// (streamSlots). memberlist decompresses a message into memory
// whole (up to 40 MiB) and allocates the states a push-pull header
// announces (up to 1,048,576) before it reads them; with the guard, a
// compressed stream is decompressed as memberlist reads it, and a
// compressed packet into at most gossipPacketMax bytes. It records the
// source prefix of each signed alive message of a plaintext packet, and
// drops those of a source that spent its budget of failed signature
// checks (gossipbudget.go); it has the answer to a plaintext ping or
// ping request sent where it came from, and drops a plaintext ping
// request whose target is not a member's gossip address (ackToSender);
// and it records the source
// prefix of each signed alive state of a plaintext push-pull
// (pushReader), whose check NotifyAlive charges to it or skips once it
// spent its budget.
//
// Inbound push-pulls announcing more states than the members this node
// knows plus gossipPushSlack and maxUnverified are refused, and what memberlist holds for
// streams, inbound and the answers to push-pulls this node started, is
// bounded node-wide, with a share per source prefix (gossipHeld,
// heldBytes).
//
// Encrypted packets and streams (a gossip key is set) are passed on as
// they are: the guard cannot read them. Anyone can send one, with the key
// or without: memberlist checks the key only once it has read an
// encrypted stream whole, into a buffer of the length the stream
// announces (up to 20 MiB), and holds it until the stream ends or its TCP
// timeout (10 s). So an inbound encrypted stream announcing more than the
// members this node knows could send (sealedMax) is refused, and its
// announced length, as that of an encrypted answer to a push-pull this
// node started, is charged to gossipHeld until it ends; the size and
// stream bounds apply as to plaintext.
//
// Its two goroutines move packets and streams from the inner transport to
// memberlist; they end on Shutdown, which memberlist calls on its own.
type gossipGuard struct {
	inner     memberlist.NodeAwareTransport
	encrypted bool
	maxNodes  int // push-pull states a stream may announce

	packets chan *memberlist.Packet
	streams chan net.Conn
	slots   streamSlots // inbound streams open
	done    chan struct{}
	wg      sync.WaitGroup
	stop    sync.Once

	refused atomic.Int64
	metric  *prometheus.CounterVec
	log     *ratelog.Log
	// budget bounds the failed signature checks of each source's
	// plaintext alive messages and pushed states (gossipbudget.go).
	budget *sigBudget
	// members are the gossip addresses of the members memberlist knows,
	// the only targets a plaintext ping request may name (memberEvents).
	members memberAddrs
}

// Reasons of refusals (the metric's reason label).
const (
	refuseSize      = "size"       // a datagram beyond gossipPacketMax
	refuseBomb      = "decompress" // a compressed message beyond its bound
	refuseCompound  = "compound"   // nested, too many parts, or more than one ping
	refuseMalformed = "malformed"  // bad checksum, framing or encoding, an empty message or one of a type memberlist does not handle
	refuseBusy      = "busy"       // all slots taken, none giving way, the source prefix below its share
	refuseShare     = "share"      // all slots taken, none giving way, the source prefix holding its share or more
	refuseEvicted   = "evicted"    // its slot taken by a new stream of a prefix holding fewer
	refuseSlow      = "slow"       // its slot taken by a new stream, its first bytes not come within gossipFirstBytes
	refuseHeader    = "header"     // push-pull header beyond the member bound (inbound: the members known, gossipPushSlack and maxUnverified), or with user state
	refuseUser      = "user"       // a user message: discovery sends none
	refuseState     = "state"      // a push-pull state beyond gossipStateMax
	refuseLength    = "length"     // an encrypted stream announcing more than the members could send (sealedMax)
	refusePing      = "ping"       // a ping beyond gossipPingMax
	refuseAnswer    = "answer"     // an error answer or a ping's ack beyond gossipAnswerMax, on a stream this node opened
	// refuseHeld: the bytes memberlist would hold for streams beyond
	// gossipHeld, none giving way, the source prefix within its
	// share with the stream's; refuseHeldShare: the same, the prefix
	// beyond its share with them; refuseHeldEvicted: the stream's bytes
	// taken by a stream of a prefix within its share (heldBytes).
	refuseHeld        = "held"
	refuseHeldShare   = "held_share"
	refuseHeldEvicted = "held_evicted"
	// refuseSignatures: an alive message whose source spent its budget
	// of failed signature checks (kind "alive": counted per message).
	refuseSignatures = "signatures"
	// refuseNodeSignatures: an alive message dropped unchecked because
	// the node spent its budget of failed signature checks, from all
	// sources together (kind "alive": counted per message).
	refuseNodeSignatures = "node_signatures"
	// refuseTarget: a ping request naming a target that is not a member's
	// gossip address (kind "ping": counted per request).
	refuseTarget = "target"
	// refuseLink: an alive message whose metadata names a link address
	// that is not a canonical IP:port (kind "alive", checkLinkAddr).
	refuseLink = "link"
)

func newGossipGuard(inner memberlist.NodeAwareTransport, encrypted bool, reg prometheus.Registerer, log *ratelog.Log) (*gossipGuard, error) {
	m := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "circuitmesh_gossip_refused_total",
		Help: "Gossip packets and streams refused before memberlist decoded them, by kind (packet, stream) and reason (size, decompress, compound, malformed, busy, share, evicted, slow, header, user, state, length, ping, answer, held, held_share, held_evicted), alive messages dropped before their signature check because their source failed too many (kind alive, reason signatures) or the node did, from all sources together, or they came beyond the node's bound of those from sources that are not members (kind alive, reason node_signatures) or refused because their link address is not a canonical IP:port (kind alive, reason link), and ping requests dropped because their target is not a member (kind ping, reason target)."},
		[]string{"kind", "reason"})
	if err := reg.Register(m); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		m = are.ExistingCollector.(*prometheus.CounterVec)
	}
	for _, r := range []string{refuseSize, refuseBomb, refuseCompound, refuseMalformed} {
		m.WithLabelValues("packet", r) // from zero, so rate() sees the first
	}
	for _, r := range []string{refuseBomb, refuseCompound, refuseMalformed, refuseBusy, refuseShare, refuseEvicted, refuseSlow, refuseHeader, refuseUser, refuseState, refuseLength, refusePing, refuseAnswer, refuseHeld, refuseHeldShare, refuseHeldEvicted} {
		m.WithLabelValues("stream", r)
	}
	m.WithLabelValues("alive", refuseSignatures)
	m.WithLabelValues("alive", refuseNodeSignatures)
	m.WithLabelValues("alive", refuseLink)
	m.WithLabelValues("ping", refuseTarget)
	g := &gossipGuard{
		inner: inner, encrypted: encrypted, maxNodes: maxMembers,
		packets: make(chan *memberlist.Packet), streams: make(chan net.Conn),
		slots: streamSlots{byPrefix: make(map[netip.Prefix]int)}, done: make(chan struct{}),
		metric: m, log: log, budget: newSigBudget(),
		members: memberAddrs{byName: make(map[string]memberAddr), at: make(map[netip.AddrPort]*addrNames)},
	}
	g.wg.Add(2)
	go forward(g, inner.PacketCh(), g.packets, g.passPacket, func(*memberlist.Packet) {})
	go forward(g, inner.StreamCh(), g.streams, g.passStream, func(c net.Conn) { _ = c.Close() })
	return g, nil
}

func (g *gossipGuard) refuse(kind, reason string, from net.Addr, err error) {
	g.refused.Add(1)
	g.metric.WithLabelValues(kind, reason).Inc()
	g.log.Warn("gossip "+kind+" "+reason, "gossip "+kind+" refused", "reason", reason, "from", from, "err", err)
}

// refusedAlive counts an alive message refused for reason. memberlist
// logs the refusal (its WARN lines are rate-limited per kind: slogWriter);
// it is not counted in Refused, which counts packets and streams.
func (g *gossipGuard) refusedAlive(reason string) {
	g.metric.WithLabelValues("alive", reason).Inc()
}

// Refused is how many packets and streams the guard refused.
func (g *gossipGuard) Refused() int64 { return g.refused.Load() }

// forward hands what in delivers, as pass turns it (false: refused), to
// out until the guard is shut down; drop is given what was taken but not
// handed on.
func forward[T any](g *gossipGuard, in <-chan T, out chan<- T, pass func(T) (T, bool), drop func(T)) {
	defer g.wg.Done()
	for {
		select {
		case v := <-in:
			v, ok := pass(v)
			if !ok {
				continue
			}
			select {
			case out <- v:
			case <-g.done:
				drop(v)
				return
			}
		case <-g.done:
			return
		}
	}
}

func (g *gossipGuard) passPacket(p *memberlist.Packet) (*memberlist.Packet, bool) {
	buf, reason, err := g.checkPacket(p.Buf)
	if reason != "" {
		g.refuse("packet", reason, p.From, err)
		return nil, false
	}
	if !g.encrypted {
		var dropped int
		src, now := links.SourcePrefix(p.From), time.Now()
		if ua, ok := p.From.(*net.UDPAddr); ok && bytes.Contains(buf, []byte(metaSigField)) && g.members.has(ua.AddrPort()) {
			g.budget.memberSent(src, now)
		}
		var why string
		if buf, dropped, why = g.budget.filter(buf, src, now); dropped > 0 {
			if why == sigRefuseNode {
				g.dropAliveNode(dropped, p.From)
			} else {
				g.dropAlive(dropped, p.From)
			}
			if buf == nil {
				g.refused.Add(1)
				return nil, false
			}
		}
	}
	if !g.encrypted {
		var strays int
		buf, strays = ackToSender(buf, p.From, g.members.has)
		if strays > 0 {
			g.metric.WithLabelValues("ping", refuseTarget).Add(float64(strays))
			g.log.Warn("gossip ping "+refuseTarget, "gossip ping requests dropped: their target is not a member", "from", p.From, "dropped", strays)
			if buf == nil {
				g.refused.Add(1)
				return nil, false
			}
		}
	}
	p.Buf = buf
	return p, true
}

// Copies of memberlist's messages the guard decodes (memberlist v0.7.0
// net.go), with every field in memberlist's order: go-msgpack decodes a
// struct from a msgpack array by position, as memberlist does, so a
// struct with fewer fields would read other fields than memberlist's.

// gossipPushState is memberlist's pushNodeState, a push-pull's state of
// one member.
type gossipPushState struct {
	Name        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Incarnation uint32
	State       int // memberlist's NodeStateType
	Vsn         []uint8
}

// gossipAlive is memberlist's alive message.
type gossipAlive struct {
	Incarnation uint32
	Node        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Vsn         []uint8
}

// gossipPing is memberlist's ping message.
type gossipPing struct {
	SeqNo      uint32
	Node       string
	SourceAddr []byte `codec:",omitempty"`
	SourcePort uint16 `codec:",omitempty"`
	SourceNode string `codec:",omitempty"`
}

// gossipAck is memberlist's ackResp, a ping's answer.
type gossipAck struct {
	SeqNo   uint32
	Payload []byte
}

// gossipErrAnswer is memberlist's errResp, the answer to a stream whose
// first message it could not read.
type gossipErrAnswer struct {
	Error string
}

// gossipIndirectPing is memberlist's indirectPingReq, a ping request.
type gossipIndirectPing struct {
	SeqNo      uint32
	Target     []byte
	Port       uint16
	Node       string
	Nack       bool
	SourceAddr []byte `codec:",omitempty"`
	SourcePort uint16 `codec:",omitempty"`
	SourceNode string `codec:",omitempty"`
}

// ackToSender has the answer to each ping and ping request of a
// plaintext packet (as checkPacket returns it) sent where the packet came
// from: memberlist answers at the address they name (their SourceAddr and
// SourcePort: a ping's ack, a ping request's relayed ack or nack), so
// that anyone could aim a node's answers at anyone. A member's ping or
// request names its gossip address, which it sends from; one naming
// another address is handed on without it. It also drops each ping
// request whose target is not a member's gossip address (member says
// which are): memberlist pings the target a request names, whatever it
// is, and members ask only about members. strays counts the requests
// dropped; out is nil when nothing is left.
func ackToSender(p []byte, from net.Addr, member func(netip.AddrPort) bool) (out []byte, strays int) {
	ua, ok := from.(*net.UDPAddr)
	if !ok || len(p) == 0 {
		return p, 0
	}
	switch p[0] {
	case gmPing, gmIndirectPing:
		out, _ := pingToSender(p, ua, member)
		if out == nil {
			return nil, 1
		}
		return out, 0
	case gmCompound:
		parts := compoundParts(p)
		kept := parts[:0]
		changed := false
		for _, part := range parts {
			if len(part) > 0 && (part[0] == gmPing || part[0] == gmIndirectPing) {
				var c bool
				part, c = pingToSender(part, ua, member)
				changed = changed || c
				if part == nil {
					strays++
					continue
				}
			}
			kept = append(kept, part)
		}
		switch {
		case len(kept) == 0:
			return nil, strays
		case changed:
			return compound(kept), strays
		}
	}
	return p, strays
}

// pingToSender is the ping or ping request m (its type and body)
// without the address it names for its answer, if that is not from;
// changed says whether it was. It is nil for a ping request whose target
// is not a member's address (member), or that names none.
func pingToSender(m []byte, from *net.UDPAddr, member func(netip.AddrPort) bool) (out []byte, changed bool) {
	var msg any
	var addr *[]byte
	var port *uint16
	switch m[0] {
	case gmPing:
		p := new(gossipPing)
		msg, addr, port = p, &p.SourceAddr, &p.SourcePort
	case gmIndirectPing:
		p := new(gossipIndirectPing)
		msg, addr, port = p, &p.SourceAddr, &p.SourcePort
	default:
		return m, false
	}
	if codec.NewDecoderBytes(m[1:], &codec.MsgpackHandle{}).Decode(msg) != nil {
		return m, false // memberlist refuses it too
	}
	if r, ok := msg.(*gossipIndirectPing); ok {
		ip, ok := netip.AddrFromSlice(r.Target)
		if !ok || r.Port == 0 || !member(netip.AddrPortFrom(ip.Unmap(), r.Port)) {
			return nil, true
		}
	}
	if len(*addr) == 0 || *port == 0 ||
		net.IP(*addr).Equal(from.IP) && int(*port) == from.Port {
		return m, false
	}
	*addr, *port = nil, 0
	var b bytes.Buffer
	b.WriteByte(m[0])
	if codec.NewEncoder(&b, &codec.MsgpackHandle{}).Encode(msg) != nil {
		return m, false
	}
	return b.Bytes(), true
}

// dropAlive counts and logs n alive messages from a source that spent
// its budget of failed signature checks, dropped before any check.
func (g *gossipGuard) dropAlive(n int, from any) {
	g.metric.WithLabelValues("alive", refuseSignatures).Add(float64(n))
	g.log.Warn("gossip alive "+refuseSignatures, "gossip alive messages dropped before their signature check: their source failed too many",
		"from", from, "dropped", n)
}

// dropAliveNode counts and logs n alive messages dropped before their
// signature check because the node spent its budget of failed checks.
func (g *gossipGuard) dropAliveNode(n int, from any) {
	g.metric.WithLabelValues("alive", refuseNodeSignatures).Add(float64(n))
	g.log.Warn("gossip alive "+refuseNodeSignatures, "gossip alive messages dropped before their signature check: the node failed too many, from any sources",
		"from", from, "dropped", n)
}

func (g *gossipGuard) passStream(c net.Conn) (net.Conn, bool) {
	gc := g.guard(c, true)
	evicted, why, reason := g.slots.admit(gc, time.Now())
	if evicted != nil {
		g.refuse("stream", why, evicted.RemoteAddr(), nil)
		_ = evicted.Conn.Close() // memberlist's read fails; its Close is a no-op then
	}
	if reason != "" {
		g.refuse("stream", reason, c.RemoteAddr(), nil)
		_ = c.Close()
		return nil, false
	}
	return gc, true
}

// streamSlots accounts the inbound streams open: at most gossipStreams.
// While a slot is free a new stream takes it, whatever its source prefix
// holds: members on one host or behind one NAT share a prefix, and on a
// starved machine their streams stay open long. When all are taken, a new
// stream of a prefix holding n streams takes the slot of, in this order:
//
//   - a stream whose first bytes have not come within gossipFirstBytes
//     (refuseSlow);
//   - a stream waiting for its message (memberlist has not answered it
//     yet) of a prefix holding more than n (refuseEvicted);
//   - when n is below gossipStreamShare, any stream of a prefix holding
//     more than its share (refuseEvicted);
//
// each time of the prefix holding the most streams, the oldest of them.
// Else it is refused: refuseShare if its prefix holds its share or more,
// refuseBusy if not. So a stranger that holds slots with silent or slow
// connections loses them to the next streams, and a prefix that holds
// more than its share, honest or not, gives way to the streams of a
// prefix below it, while an honest member's message, sent at once, is
// read before many newer streams arrive.
type streamSlots struct {
	mu       sync.Mutex
	byPrefix map[netip.Prefix]int // prefixes holding streams: at most gossipStreams
	held     []*guardConn         // the streams holding slots, oldest first: at most gossipStreams
	// out are the streams this node opened whose answers memberlist
	// holds bytes for (heldBytes): at most the push-pulls it runs at
	// once (its periodic one and its joins).
	out []*guardConn
	// bytes is what memberlist holds for the streams holding slots and
	// those of out, as charged (heldBytes): at most gossipHeld; bytesBy is
	// it by source prefix (prefixes holding streams).
	bytes   int64
	bytesBy map[netip.Prefix]int64
}

// admit takes a slot for c at now, or says why not (reason); it may take
// it from another stream, which it returns released (for the caller to
// close) with the reason it gave way (why).
func (s *streamSlots) admit(c *guardConn, now time.Time) (evicted *guardConn, why, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.held) >= gossipStreams {
		n := s.byPrefix[c.prefix]
		late := func(w *guardConn) bool { return !w.arrived && now.Sub(w.at) >= gossipFirstBytes }
		evicted, why = s.pick(late, 0), refuseSlow
		if evicted == nil {
			evicted, why = s.pick(func(w *guardConn) bool { return w.waiting }, n), refuseEvicted
		}
		if evicted == nil && n < gossipStreamShare {
			evicted, why = s.pick(func(*guardConn) bool { return true }, gossipStreamShare), refuseEvicted
		}
		if evicted == nil {
			if n >= gossipStreamShare {
				return nil, "", refuseShare
			}
			return nil, "", refuseBusy
		}
		s.releaseLocked(evicted)
	}
	s.byPrefix[c.prefix]++
	c.slotted, c.waiting, c.at = true, true, now
	s.held = append(s.held, c)
	return evicted, why, ""
}

// pick is the oldest of the held streams ok takes of the prefix holding
// the most streams, if it holds more than floor; nil if there is none.
func (s *streamSlots) pick(ok func(*guardConn) bool, floor int) *guardConn {
	var v *guardConn
	for _, w := range s.held {
		if k := s.byPrefix[w.prefix]; ok(w) && k > floor && (v == nil || k > s.byPrefix[v.prefix]) {
			v = w
		}
	}
	return v
}

// arrived marks c's first bytes as come.
func (s *streamSlots) arrived(c *guardConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.arrived = true
}

// answered marks c as no longer waiting for its message.
func (s *streamSlots) answered(c *guardConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.waiting = false
}

func (s *streamSlots) release(c *guardConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(c)
}

// heldBytes charges n more bytes that memberlist will hold for stream c
// (inbound: slotted; outbound: the answer to a push-pull this node
// started, which takes no slot) until it ends. While the node's streams
// hold at most gossipHeld with them, they are charged whatever c's
// source prefix holds: members on one host or behind one NAT share a
// prefix. Beyond
// it, when c's prefix holds at most gossipHeldShare with them, streams of
// prefixes holding more than that give their bytes (and slots) way, each
// time the oldest of the prefix holding the most, until n fits: they are
// returned released, for the caller to close (refuseHeldEvicted). Else
// nothing is charged, and reason says why: refuseHeldShare when c's
// prefix would hold more than its share, refuseHeld when not, and
// refuseHeldEvicted when c gave its slot way already.
func (s *streamSlots) heldBytes(c *guardConn, n int64) (evicted []*guardConn, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.released || c.inbound && !c.slotted {
		return nil, refuseHeldEvicted
	}
	if s.bytes+n > gossipHeld {
		if s.bytesBy[c.prefix]+n > gossipHeldShare {
			return nil, refuseHeldShare
		}
		// Pick the streams to give way on a copy of the prefixes' bytes,
		// and release them only if they make room enough.
		by := make(map[netip.Prefix]int64, len(s.bytesBy))
		for p, b := range s.bytesBy {
			by[p] = b
		}
		free := gossipHeld - s.bytes
		for free < n {
			var v *guardConn
			for _, w := range slices.Concat(s.held, s.out) {
				if k := by[w.prefix]; w.hold > 0 && !slices.Contains(evicted, w) && k > gossipHeldShare && (v == nil || k > by[v.prefix]) {
					v = w
				}
			}
			if v == nil {
				return nil, refuseHeld
			}
			evicted = append(evicted, v)
			by[v.prefix] -= v.hold
			free += v.hold
		}
		for _, v := range evicted {
			s.releaseLocked(v)
		}
	}
	if s.bytesBy == nil {
		s.bytesBy = make(map[netip.Prefix]int64)
	}
	if !c.slotted { // outbound, first charged
		c.slotted = true
		s.out = append(s.out, c)
	}
	c.hold += n
	s.bytes += n
	s.bytesBy[c.prefix] += n
	return evicted, ""
}

// heldNow is what the inbound streams are charged for, all and of
// prefix p.
func (s *streamSlots) heldNow(p netip.Prefix) (all, of int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes, s.bytesBy[p]
}

func (s *streamSlots) releaseLocked(c *guardConn) {
	if !c.slotted {
		return
	}
	c.slotted, c.released = false, true
	if c.hold > 0 {
		s.bytes -= c.hold
		if s.bytesBy[c.prefix] -= c.hold; s.bytesBy[c.prefix] <= 0 {
			delete(s.bytesBy, c.prefix)
		}
		c.hold = 0
	}
	if !c.inbound {
		s.out = slices.DeleteFunc(s.out, func(w *guardConn) bool { return w == c })
		return
	}
	s.held = slices.DeleteFunc(s.held, func(w *guardConn) bool { return w == c })
	if s.byPrefix[c.prefix]--; s.byPrefix[c.prefix] <= 0 {
		delete(s.byPrefix, c.prefix)
	}
}

// checkPacket returns the packet memberlist is to read (crc checked and
// stripped, decompressed) or why it is refused.
func (g *gossipGuard) checkPacket(b []byte) ([]byte, string, error) {
	if len(b) > gossipPacketMax {
		return nil, refuseSize, fmt.Errorf("%d bytes", len(b))
	}
	if g.encrypted || len(b) == 0 {
		return b, "", nil
	}
	if b[0] == gmHasCrc {
		if len(b) < 5 || crc32.ChecksumIEEE(b[5:]) != binary.BigEndian.Uint32(b[1:5]) {
			return nil, refuseMalformed, errors.New("bad checksum")
		}
		b = b[5:]
	}
	if len(b) > 0 && b[0] == gmCompress {
		rd := bytes.NewReader(b[1:])
		n, err := readCompressHeader(rd)
		if err != nil {
			return nil, refuseMalformed, err
		}
		if n > int64(rd.Len()) {
			return nil, refuseMalformed, errors.New("truncated compressed message")
		}
		off := len(b) - rd.Len()
		r := lzw.NewReader(bytes.NewReader(b[off:off+int(n)]), lzw.LSB, 8)
		plain, err := io.ReadAll(io.LimitReader(r, gossipPacketMax+1))
		_ = r.Close()
		if err != nil {
			return nil, refuseMalformed, err
		}
		if len(plain) > gossipPacketMax {
			return nil, refuseBomb, fmt.Errorf("decompresses beyond %d bytes", gossipPacketMax)
		}
		b = plain
	}
	if len(b) == 0 {
		return nil, refuseMalformed, errors.New("empty message")
	}
	switch b[0] {
	case gmCompound:
		if reason, err := checkCompound(b[1:]); reason != "" {
			return nil, reason, err
		}
	case gmCompress, gmHasCrc, gmHasLabel:
		return nil, refuseCompound, fmt.Errorf("message type %d nested", b[0])
	default:
		if !packetMessage(b[0]) {
			return nil, refuseMalformed, fmt.Errorf("message type %d unknown", b[0])
		}
	}
	return b, "", nil
}

// packetMessage reports whether memberlist handles a message of type t in
// a datagram or a compound's part (memberlist net.go handleCommand):
// any other, or an empty one, it logs as an error, one line each (a
// compound of 64 parts was 64 lines), so the guard refuses them.
func packetMessage(t byte) bool {
	switch t {
	case gmPing, gmIndirectPing, gmAck, gmSuspect, gmAlive, gmDead, gmUser, gmNack:
		return true
	}
	return false
}

// checkCompound checks a compound message's parts (memberlist util.go
// decodeCompoundMessage): at most gossipPacketParts, none truncated or
// empty, none a compound, compressed or checksummed message itself or
// of a type memberlist does not handle (packetMessage), at most one ping
// or indirect ping request. memberlist sends one probe a datagram, and
// answers each ping with an ack at the address the ping names: a
// datagram of many pings would have it send as many acks to anyone.
func checkCompound(b []byte) (string, error) {
	if len(b) < 1 {
		return refuseMalformed, errors.New("empty compound")
	}
	n := int(b[0])
	if n > gossipPacketParts {
		return refuseCompound, fmt.Errorf("%d parts", n)
	}
	b = b[1:]
	if len(b) < 2*n {
		return refuseMalformed, errors.New("truncated compound")
	}
	body := b[2*n:]
	pings := 0
	for i := range n {
		l := int(binary.BigEndian.Uint16(b[2*i:]))
		if l > len(body) {
			return refuseMalformed, errors.New("truncated compound")
		}
		if l == 0 {
			return refuseMalformed, errors.New("empty part in a compound")
		}
		switch body[0] {
		case gmCompound, gmCompress, gmHasCrc, gmEncrypt, gmHasLabel:
			return refuseCompound, fmt.Errorf("message type %d in a compound", body[0])
		case gmPing, gmIndirectPing:
			if pings++; pings > 1 {
				return refuseCompound, errors.New("more than one ping in a compound")
			}
		default:
			if !packetMessage(body[0]) {
				return refuseMalformed, fmt.Errorf("message type %d unknown in a compound", body[0])
			}
		}
		body = body[l:]
	}
	return "", nil
}

// readCompressHeader reads memberlist's msgpack compress{Algo, Buf} up to
// Buf's bytes and returns their length. Algo must come first (as
// memberlist encodes it) and be LZW; Buf may be msgpack bin or, as older
// encoders write a byte slice, str. A read error is returned as a
// headerCut.
func readCompressHeader(r io.ByteReader) (int64, error) {
	bad := func(what string) (int64, error) {
		return 0, fmt.Errorf("compressed message: %s", what)
	}
	m, err := r.ReadByte()
	if err != nil {
		return 0, headerCut{err}
	}
	if m != 0x82 {
		return bad("not a map of 2")
	}
	var key [8]byte
	for i := range 2 {
		c, err := r.ReadByte()
		if err != nil {
			return 0, headerCut{err}
		}
		if c&0xe0 != 0xa0 || int(c&0x1f) > len(key) {
			return bad("bad key")
		}
		k := key[:c&0x1f]
		for j := range k {
			if k[j], err = r.ReadByte(); err != nil {
				return 0, headerCut{err}
			}
		}
		switch {
		case i == 0 && string(k) == "Algo":
			v, err := r.ReadByte()
			if err == nil && v == 0xcc {
				v, err = r.ReadByte()
			}
			if err != nil {
				return 0, headerCut{err}
			}
			if v != gmLZW {
				return bad("unknown algorithm")
			}
		case i == 1 && string(k) == "Buf":
			return readBytesLen(r)
		default:
			return bad("unexpected field")
		}
	}
	return bad("no buffer")
}

// headerCut is a read error met inside a message's header: on a stream,
// its end or its deadline came there, which memberlist would meet as well
// reading it (not a malformed message).
type headerCut struct{ err error }

func (e headerCut) Error() string { return "compressed message header: " + e.err.Error() }
func (e headerCut) Unwrap() error { return e.err }

// readBytesLen reads a msgpack bin or str header and returns its length;
// a read error is returned as a headerCut.
func readBytesLen(r io.ByteReader) (int64, error) {
	c, err := r.ReadByte()
	if err != nil {
		return 0, headerCut{err}
	}
	var size int
	switch {
	case c == 0xc0: // nil
		return 0, nil
	case c&0xe0 == 0xa0: // fixstr
		return int64(c & 0x1f), nil
	case c == 0xc4 || c == 0xd9:
		size = 1
	case c == 0xc5 || c == 0xda:
		size = 2
	case c == 0xc6 || c == 0xdb:
		size = 4
	default:
		return 0, fmt.Errorf("compressed message: buffer of msgpack type %#x", c)
	}
	var n int64
	for range size {
		b, err := r.ReadByte()
		if err != nil {
			return 0, headerCut{err}
		}
		n = n<<8 | int64(b)
	}
	return n, nil
}

// guardConn is a gossip stream whose first Read inspects it (in the
// goroutine memberlist reads it in, under memberlist's deadline) and
// whose later Reads serve what was read, then the rest.
type guardConn struct {
	net.Conn
	g       *gossipGuard
	inbound bool
	r       io.Reader // nil until inspected

	prefix netip.Prefix // the source prefix (outbound: the peer's)
	// Under g.slots.mu: slotted while the stream holds a slot (taken
	// at; outbound: while it is charged bytes), released once it gave it
	// up, waiting until memberlist first writes on it, arrived once the
	// bytes the guard inspects have come.
	slotted, released, waiting, arrived bool
	at                                  time.Time
	hold                                int64 // bytes charged (heldBytes)
	wrote                               atomic.Bool
	// seen records the sources of a plaintext push-pull's signed
	// states (nil for other streams).
	seen *pushSeen
}

func (g *gossipGuard) guard(c net.Conn, inbound bool) *guardConn {
	return &guardConn{Conn: c, g: g, inbound: inbound, prefix: links.SourcePrefix(c.RemoteAddr())}
}

func (c *guardConn) Read(p []byte) (int, error) {
	if c.r == nil {
		r, reason, err := c.inspect()
		if reason != "" {
			c.g.refuse("stream", reason, c.RemoteAddr(), err)
			err = fmt.Errorf("%w: %s: %w", ErrGossipRefused, reason, err)
			r = errReader{err}
		}
		c.r = r
	}
	return c.r.Read(p)
}

func (c *guardConn) Write(p []byte) (int, error) {
	if c.inbound && !c.wrote.Swap(true) {
		c.g.slots.answered(c)
	}
	return c.Conn.Write(p)
}

func (c *guardConn) Close() error {
	c.g.slots.release(c)
	if c.inbound {
		if c.seen != nil {
			c.g.budget.pushEnded(c.seen)
		}
	}
	return c.Conn.Close()
}

// charge charges n bytes that memberlist will hold for stream c (what
// they are) until it ends (streamSlots.heldBytes), and closes the
// streams that gave theirs way. When refused, it returns why and what
// to log; a stream that gave its slot way already gets an error and no
// reason (it was counted then).
func (c *guardConn) charge(n int64, what string) (string, error) {
	evicted, reason := c.g.slots.heldBytes(c, n)
	for _, v := range evicted {
		c.g.refuse("stream", refuseHeldEvicted, v.RemoteAddr(), fmt.Errorf("its bytes held taken by a stream from %s", c.prefix))
		_ = v.Conn.Close() // memberlist's read fails; its Close is a no-op then
	}
	switch reason {
	case "":
		return "", nil
	case refuseHeldEvicted:
		return "", fmt.Errorf("%w: stream closed: its slot taken by another", ErrGossipRefused)
	}
	all, of := c.g.slots.heldNow(c.prefix)
	return reason, fmt.Errorf("%s of %d bytes: gossip streams hold %d of %d bytes, %d of them from %s (share %d)",
		what, n, all, gossipHeld, of, c.prefix, gossipHeldShare)
}

// inboundStates is the most states an inbound push-pull may announce
// when this node knows n members: n, gossipPushSlack and maxUnverified,
// within the member bound. A member's state may hold up to
// maxUnverified members whose metadata it did not verify (made up by a
// stranger who pushed them to it) that this node does not know: an
// honest node a stranger flooded pushes them to the nodes that know few.
// NotifyAlive takes at most maxUnverified of them all the same.
func (g *gossipGuard) inboundStates(n int) int {
	return min(g.maxNodes, n+gossipPushSlack+maxUnverified)
}

// sealedMax is the longest encrypted stream the members this node knows
// may send it (a push-pull of inboundStates states, each at most
// gossipSealedState, and gossipSealedExtra; within memberlist's own
// bound, gossipStreamMax), and how many members it knows.
func (g *gossipGuard) sealedMax() (int64, int) {
	n := g.members.count()
	return min(gossipStreamMax, int64(g.inboundStates(n))*gossipSealedState+gossipSealedExtra), n
}

// inspect reads a stream's first message far enough to bound what
// memberlist will allocate for it, and returns the reader to serve it
// from. memberlist's deadline bounds the read; an inbound stream whose
// first bytes are late gives its slot to the next stream (streamSlots).
func (c *guardConn) inspect() (io.Reader, string, error) {
	r, reason, err := c.inspectFirst()
	if c.inbound {
		c.g.slots.arrived(c)
	}
	return r, reason, err
}

func (c *guardConn) inspectFirst() (io.Reader, string, error) {
	var t [1]byte
	if _, err := io.ReadFull(c.Conn, t[:]); err != nil {
		return errReader{err}, "", nil // memberlist sees the same end
	}
	if t[0] == gmEncrypt {
		// memberlist's encrypted stream: the type, then the length.
		var l [5]byte
		l[0] = t[0]
		if _, err := io.ReadFull(c.Conn, l[1:]); err != nil {
			return errReader{err}, "", nil
		}
		// memberlist reads the announced length whole before it checks
		// the key (without a key it refuses the stream unread). The
		// answer to a push-pull this node started may carry a mesh it is
		// joining: up to memberlist's own bound, charged all the same.
		if c.g.encrypted {
			n := int64(binary.BigEndian.Uint32(l[1:]))
			if most, members := c.g.sealedMax(); c.inbound && n > most {
				return nil, refuseLength, fmt.Errorf("encrypted stream of %d bytes, beyond %d for %d members known", n, most, members)
			}
			if reason, err := c.charge(n, "encrypted stream"); err != nil {
				if reason == "" {
					return errReader{err}, "", nil
				}
				return nil, reason, err
			}
		}
		return io.MultiReader(bytes.NewReader(l[:]), c.Conn), "", nil
	}
	if c.g.encrypted {
		return io.MultiReader(bytes.NewReader(t[:]), c.Conn), "", nil
	}
	var src io.Reader = &capReader{r: c.Conn, n: gossipStreamMax}
	if t[0] == gmCompress {
		br := bufio.NewReaderSize(src, 64)
		n, err := readCompressHeader(br)
		var cut headerCut
		if errors.As(err, &cut) {
			return errReader{cut.err}, "", nil // memberlist sees the same end
		}
		if err != nil {
			return nil, refuseMalformed, err
		}
		lr := lzw.NewReader(io.LimitReader(br, n), lzw.LSB, 8)
		src = &capReader{r: lr, n: gossipStreamMax}
		if _, err := io.ReadFull(src, t[:]); err != nil {
			if errors.Is(err, errStreamCap) {
				return nil, refuseBomb, err
			}
			return nil, refuseMalformed, err
		}
		if t[0] == gmCompress || t[0] == gmEncrypt {
			return nil, refuseCompound, fmt.Errorf("message type %d compressed", t[0])
		}
	}
	if t[0] == gmUser {
		// memberlist allocates what its header announces (up to 20 MiB)
		// before it reads it; discovery sends no user messages.
		return nil, refuseUser, errors.New("user message")
	}
	head := bytes.NewReader(t[:])
	if t[0] == gmPing {
		return inspectPing(head, src)
	}
	if !c.inbound && (t[0] == gmErr || t[0] == gmAck) {
		// The answer to a push-pull or a ping this node sent.
		return inspectAnswer(t[0], head, src)
	}
	if t[0] != gmPushPull {
		return io.MultiReader(head, src), "", nil
	}
	// memberlist's pushPullHeader; the bytes the decoder reads are kept
	// to be served again.
	pr := &pushReader{lim: io.LimitedReader{R: src, N: gossipHeaderMax}}
	h := &codec.MsgpackHandle{}
	h.MaxInitLen = gossipStateMax // what the decoder allocates before it reads
	pr.dec = codec.NewDecoder(io.TeeReader(&pr.lim, &pr.rec), h)
	var hd struct {
		Nodes        int
		UserStateLen int
		Join         bool
	}
	if err := pr.dec.Decode(&hd); err != nil {
		return nil, refuseMalformed, err
	}
	// discovery keeps no user state (LocalState is empty). An inbound
	// push-pull carries its sender's members, which this node knows too
	// but for gossipPushSlack and the sender's unverified ones
	// (inboundStates); the answer to one this node started may
	// carry a mesh it is joining, up to the member bound.
	most := c.g.maxNodes
	if c.inbound {
		most = c.g.inboundStates(c.g.members.count())
	}
	if hd.Nodes < 0 || hd.Nodes > most || hd.UserStateLen != 0 {
		return nil, refuseHeader, fmt.Errorf("push-pull of %d states (at most %d) and %d bytes of user state", hd.Nodes, most, hd.UserStateLen)
	}
	// memberlist allocates the states announced before it reads them.
	if reason, err := c.charge(int64(hd.Nodes)*gossipPushStateSize, fmt.Sprintf("push-pull header of %d states", hd.Nodes)); err != nil {
		if reason == "" {
			return errReader{err}, "", nil
		}
		return nil, reason, err
	}
	pr.charge = c.charge
	// The states: each bounded to gossipStateMax (pushReader.Read).
	pr.left = hd.Nodes
	pr.refuse = func(reason string, err error) {
		c.g.refuse("stream", reason, c.RemoteAddr(), err)
	}
	pr.budget = c.g.budget
	pr.seen = c.g.budget.pushStarted(links.SourcePrefix(c.RemoteAddr()), c.inbound)
	c.seen = pr.seen
	return io.MultiReader(head, pr), "", nil
}

// inspectPing reads a plaintext ping on a stream whole (src, after its
// type: head), so that its slot counts it arrived only once it has, and
// refuses one beyond gossipPingMax: memberlist decodes a ping's fields as
// they come, holding what they announce (up to gossipStreamMax) until
// they end or its TCP timeout. It returns what memberlist is to read:
// the ping, then the rest of the stream; on a read error or a malformed
// ping, memberlist meets the same.
func inspectPing(head, src io.Reader) (io.Reader, string, error) {
	return inspectWhole(head, src, new(gossipPing), gossipPingMax, refusePing, "ping")
}

// inspectAnswer reads a plaintext error answer or ack (of type t) on a
// stream this node opened whole, as inspectPing reads a ping, and refuses
// one beyond gossipAnswerMax.
func inspectAnswer(t byte, head, src io.Reader) (io.Reader, string, error) {
	if t == gmErr {
		return inspectWhole(head, src, new(gossipErrAnswer), gossipAnswerMax, refuseAnswer, "error answer")
	}
	return inspectWhole(head, src, new(gossipAck), gossipAnswerMax, refuseAnswer, "ack")
}

// inspectWhole decodes the message msg (what follows its type, head)
// from src, reading at most most bytes of it, and refuses it (reason)
// when it goes beyond them. It returns what memberlist is to read: the
// message, then the rest of the stream; on a read error or a malformed
// message, memberlist meets the same.
func inspectWhole(head, src io.Reader, msg any, most int, reason, what string) (io.Reader, string, error) {
	lim := io.LimitedReader{R: src, N: int64(most) + 1}
	var rec bytes.Buffer
	h := &codec.MsgpackHandle{}
	h.MaxInitLen = most // what the decoder allocates before it reads
	if err := codec.NewDecoder(io.TeeReader(&lim, &rec), h).Decode(msg); err != nil && lim.N <= 0 {
		return nil, reason, fmt.Errorf("%s beyond %d bytes", what, most)
	}
	return io.MultiReader(head, &rec, src), "", nil
}

// pushReader serves a plaintext push-pull's header and states as
// memberlist reads them: it decodes each state before serving its bytes
// and records the source of those carrying signed metadata
// (sigBudget.pushState), so that NotifyAlive charges a failed check of
// one to the stream's source prefix. It holds one state's bytes at a
// time, and fails the stream (refused: refuseState) once a state goes
// beyond gossipStateMax, before memberlist reads any of it. On an
// inbound stream it charges each state's bytes to the bytes memberlist
// holds for inbound streams (charge: guardConn.charge) before it serves
// them, and fails the stream when they are refused.
type pushReader struct {
	lim    io.LimitedReader
	dec    *codec.Decoder // reads lim through rec
	rec    bytes.Buffer   // what dec read, not yet served
	left   int            // states not yet decoded
	err    error          // dec's, served after rec
	budget *sigBudget
	seen   *pushSeen
	refuse func(reason string, err error) // counts and logs a refusal
	charge func(n int64, what string) (reason string, err error)
}

func (r *pushReader) Read(p []byte) (int, error) {
	for r.rec.Len() == 0 {
		switch {
		case r.err != nil:
			return 0, r.err
		case r.left == 0:
			return r.lim.Read(p) // nothing more, for a push-pull without user state
		}
		var s gossipPushState
		r.lim.N = gossipStateMax + 1
		if err := r.dec.Decode(&s); err != nil {
			if r.lim.N > 0 {
				r.err = err // memberlist fails on the same bytes
				continue
			}
			r.rec.Reset() // memberlist reads none of it
			r.err = fmt.Errorf("%w: %s: push-pull state beyond %d bytes", ErrGossipRefused, refuseState, gossipStateMax)
			r.refuse(refuseState, r.err)
			continue
		}
		if r.charge != nil {
			if reason, err := r.charge(int64(r.rec.Len()), "push-pull state"); err != nil {
				r.rec.Reset() // memberlist reads none of it
				if reason != "" {
					r.refuse(reason, err)
					err = fmt.Errorf("%w: %s: %w", ErrGossipRefused, reason, err)
				}
				r.err = err
				continue
			}
		}
		r.left--
		if s.State == 0 { // memberlist's StateAlive
			r.budget.pushState(r.seen, s.Name, s.Meta)
		}
	}
	return r.rec.Read(p)
}

var errStreamCap = fmt.Errorf("%w: stream beyond %d bytes", ErrGossipRefused, gossipStreamMax)

// capReader fails, rather than ends, a stream that goes on beyond n
// bytes, so that memberlist does not act on a truncated message.
type capReader struct {
	r io.Reader
	n int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errStreamCap
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// memberlist.NodeAwareTransport

func (g *gossipGuard) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return g.inner.FinalAdvertiseAddr(ip, port)
}
func (g *gossipGuard) WriteTo(b []byte, addr string) (time.Time, error) {
	return g.inner.WriteTo(b, addr)
}
func (g *gossipGuard) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return g.inner.WriteToAddress(b, a)
}
func (g *gossipGuard) PacketCh() <-chan *memberlist.Packet { return g.packets }
func (g *gossipGuard) StreamCh() <-chan net.Conn           { return g.streams }

// DialTimeout and DialAddressTimeout guard the answer memberlist reads
// on a stream it opens (a push-pull's) as they guard inbound streams,
// charging what memberlist holds for it to gossipHeld, without counting
// it against gossipStreams.
func (g *gossipGuard) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := g.inner.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return g.guard(c, false), nil
}
func (g *gossipGuard) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := g.inner.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return g.guard(c, false), nil
}

// Shutdown stops the inner transport while the guard still hands on what
// it delivers (the inner transport may wait for its listeners to hand
// theirs over), then ends the guard's goroutines.
func (g *gossipGuard) Shutdown() error {
	err := g.inner.Shutdown()
	g.stop.Do(func() { close(g.done) })
	g.wg.Wait()
	return err
}

// guardGossip puts a gossipGuard in front of mc's transport: the one
// given (Discovery.Transport) or, as memberlist would make it, a
// NetTransport on mc's bind address. It takes mc's logger and key, so
// it runs after they are set.
func guardGossip(mc *memberlist.Config, n *Node) (*gossipGuard, error) {
	inner := mc.Transport
	if inner == nil {
		nc := &memberlist.NetTransportConfig{BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: mc.Logger, MetricLabels: mc.MetricLabels}
		tries := 1
		if mc.BindPort == 0 {
			tries = 10 // memberlist retries a dynamic port bound on UDP but taken on TCP
		}
		var nt *memberlist.NetTransport
		var err error
		for range tries {
			if nt, err = memberlist.NewNetTransport(nc); err == nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("gossip transport: %w", err)
		}
		if mc.BindPort == 0 {
			mc.BindPort = nt.GetAutoBindPort()
			if mc.AdvertiseAddr == "" {
				mc.AdvertisePort = mc.BindPort // else Discovery.AdvertiseAddr's
			}
		}
		inner = nt
	}
	nat, ok := inner.(memberlist.NodeAwareTransport)
	if !ok {
		return nil, fmt.Errorf("gossip transport %T is not node aware", inner)
	}
	g, err := newGossipGuard(nat, len(mc.SecretKey) > 0, n.metrics.reg, ratelog.New(n.log, time.Minute, 64))
	if err != nil {
		if mc.Transport == nil {
			_ = nat.Shutdown()
		}
		return nil, err
	}
	mc.Transport = g
	if d, ok := mc.Events.(*discovery); ok && !n.identity().Insecure {
		g.members.verified = d.verifiedAt
	}
	mc.Events = memberEvents{inner: mc.Events, addrs: &g.members}
	return g, nil
}

// verifiedAt says whether this node holds metadata of member name whose
// signature it verified (checkSigned) and that names a as the member's
// gossip address. Verified metadata that names none (a node of a version
// before the field) does not count: a copy of it sent at any address
// would.
func (d *discovery) verifiedAt(name string, a netip.AddrPort) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.verified[name]
	return ok && v.gossip.IsValid() && v.gossip == a
}

// memberAddrs is the gossip addresses of the members memberlist knows,
// as its events tell them (memberEvents): one entry per member memberlist
// holds alive or suspect, so bounded as memberlist's member table is
// (maxMembers, NotifyAlive). An address counts as a member's (has) only
// once a member at it has metadata whose signature this node verified
// (verified) and names that address: anyone who can send plaintext gossip
// can have memberlist take an alive message about a made-up name, with
// unsigned metadata, at any address.
type memberAddrs struct {
	mu     sync.Mutex
	byName map[string]memberAddr
	at     map[netip.AddrPort]*addrNames
	// verified says whether a member's signed metadata verified and
	// names the address given; nil (a mesh without a CA: Insecure) takes
	// every member as it comes.
	verified func(name string, a netip.AddrPort) bool
}

// memberAddr is a member's gossip address and whether it counts.
type memberAddr struct {
	a  netip.AddrPort
	ok bool
}

// addrNames is the members at one gossip address: ok of them verified.
type addrNames struct {
	names map[string]struct{}
	ok    int
}

// maxAddrChecks bounds the unverified members at one address has checks
// again per call (their metadata may have verified since they joined).
const maxAddrChecks = 4

func (m *memberAddrs) set(n *memberlist.Node) {
	a := gossipAddrPort(n.Addr, int(n.Port))
	verified := m.verified == nil || m.verified(n.Name, a)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropLocked(n.Name)
	if !a.IsValid() {
		return
	}
	an := m.at[a]
	if an == nil {
		an = &addrNames{names: make(map[string]struct{})}
		m.at[a] = an
	}
	an.names[n.Name] = struct{}{}
	m.byName[n.Name] = memberAddr{a: a, ok: verified}
	if verified {
		an.ok++
	}
}

// count is how many members memberlist holds alive or suspect.
func (m *memberAddrs) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byName)
}

func (m *memberAddrs) drop(n *memberlist.Node) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropLocked(n.Name)
}

func (m *memberAddrs) dropLocked(name string) {
	e, ok := m.byName[name]
	if !ok {
		return
	}
	delete(m.byName, name)
	an := m.at[e.a]
	delete(an.names, name)
	if e.ok {
		an.ok--
	}
	if len(an.names) == 0 {
		delete(m.at, e.a)
	}
}

// has says whether a is the gossip address of a member whose signed
// metadata verified. It checks again up to maxAddrChecks members at a not
// verified when they joined.
func (m *memberAddrs) has(a netip.AddrPort) bool {
	m.mu.Lock()
	an := m.at[a]
	if an == nil || an.ok > 0 {
		m.mu.Unlock()
		return an != nil
	}
	var check []string
	for name := range an.names {
		if len(check) == maxAddrChecks {
			break
		}
		check = append(check, name)
	}
	m.mu.Unlock()
	for _, name := range check {
		if !m.verified(name, a) {
			continue
		}
		m.mu.Lock()
		if e, ok := m.byName[name]; ok && e.a == a && !e.ok {
			m.byName[name] = memberAddr{a: a, ok: true}
			m.at[a].ok++
		}
		m.mu.Unlock()
		return true
	}
	return false
}

// memberEvents is memberlist's event delegate: it records each member's
// gossip address in addrs (joined or updated: set; dead or left: dropped)
// and hands the event on. memberlist calls it with its node lock held.
type memberEvents struct {
	inner memberlist.EventDelegate
	addrs *memberAddrs
}

func (e memberEvents) NotifyJoin(n *memberlist.Node) {
	e.addrs.set(n)
	if e.inner != nil {
		e.inner.NotifyJoin(n)
	}
}

func (e memberEvents) NotifyUpdate(n *memberlist.Node) {
	e.addrs.set(n)
	if e.inner != nil {
		e.inner.NotifyUpdate(n)
	}
}

func (e memberEvents) NotifyLeave(n *memberlist.Node) {
	e.addrs.drop(n)
	if e.inner != nil {
		e.inner.NotifyLeave(n)
	}
}
