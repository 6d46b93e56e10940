package node

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/coordinate"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/links/ratelog"
	"github.com/circuitmesh/circuitmesh/node/topology"
)

// discovery runs memberlist gossip: it announces this node's name, link
// address and role, learns network coordinates from memberlist's probes,
// and runs the link policy (package node/topology) on membership, link and
// route events and every Interval. Gossip only discovers; a member holds a
// link only once the link's handshake proved its certificate names it.
type discovery struct {
	n  *Node
	ml *memberlist.Memberlist
	// self is this node's gossip address, read once after Create:
	// memberlist's LocalNode dereferences a nil state once the node has
	// left and been reaped from its own member map.
	self  net.UDPAddr
	vc    *coordinate.Client
	kickc chan struct{}
	logw  *slogWriter
	stats *discoveryMetrics
	full  *ratelog.Log // members that refused a link at their maximum
	bad   *ratelog.Log // members whose metadata failed its signature (checkPending)
	metas metaCache    // members' parsed metadata (NotifyAlive, member)

	keyring *memberlist.Keyring // nil when gossip is not encrypted (keys.go)
	guard   *gossipGuard        // memberlist's transport (gossipguard.go)
	probes  atomic.Int64        // probes answered, so gossip works with the keys in force
	pinging atomic.Bool         // a round of the policy's own probes runs (discoveryprobe.go)

	// stepMu serialises policy steps, which own drains.
	stepMu sync.Mutex
	drains drains // links drained before they close (discoverydrain.go)

	mu      sync.Mutex
	members map[string]gossipMember           // alive members, copied from memberlist's events
	coords  map[string]*coordinate.Coordinate // member → last coordinate
	rtts    map[string]probeRTT               // member → round trips of its last probes
	asked   map[string]time.Time              // member → when the policy last had its round trip measured (discoveryprobe.go)
	dialing map[string]bool                   // member → dial in progress
	owned   map[string]bool                   // members this node dialled and linked
	why     map[string]topology.Why           // of those, why each was dialled (topology.WhyShortcut, WhyLong)
	held    map[string]links.Link             // member → link a dial made, holding its slot until it ends
	backoff map[string]*addrBackoff           // link address → back-off
	proven  map[string]string                 // link address → member whose certificate a handshake there proved
	// unproven counts, per member, failed dials to addresses that never
	// proved it, whatever the address (failedUnprovenLocked).
	unproven map[string]*addrBackoff
	// strikes counts, per member, failed dials to addresses its own
	// verified signed metadata named that never proved it, which a link
	// proving it elsewhere does not end (discoverystrike.go). Made on
	// first use.
	strikes map[string]*memberStrikes
	// hosts bounds, per host, dials to addresses that never proved a
	// certificate, whatever the port and member (linkaddr.go).
	hosts map[string]*hostBudget
	// joinHosts: the hosts (hostKey) of the gossip addresses Join last
	// resolved to, which the operator names as the mesh's (joinedHostsLocked).
	joinHosts map[string]bool
	// joinAddrs: those gossip addresses themselves (islandRankLocked).
	joinAddrs map[string]bool
	// ipLinks: the link transport's addresses are IP:port (QUIC), so a
	// member's link address must be one, spelled canonically
	// (checkLinkAddr); an in-memory transport's are node names.
	ipLinks bool
	lost    map[string]time.Time // member → unreachable since
	static  map[string]bool      // static link addresses
	// reached: members routing reached once over a route some node
	// advertised, not only the one a link to the member implies; they
	// vouch for room-making (topology.Member.Vouched) until barred
	// (muteLocked).
	reached map[string]bool
	granted map[string]time.Time // peer → when an admission made room for it (roomBackoff)
	// quiet is, per peer of a link, since when routing has heard nothing
	// of it; muted the peers barred after a mute link or links that died
	// young, and the counts of the latter (discoverymute.go).
	quiet  map[string]time.Time
	muted  map[string]*muteEntry
	roomAt time.Time // last link given up for room (roomEvery)
	// slowRTT is the largest RTT of this node's links at the last policy
	// step, late how late the policy's timer fired lately (decaying): what
	// lostGraceLocked scales with.
	slowRTT, late time.Duration
	// islandAt is when this node last dialled a barred member because
	// it was cut off from most members (islandPickLocked).
	islandAt time.Time
	// unvouchedAt is when the policy last could give up a link for a
	// member not vouched for (unvouchedRoomEvery).
	unvouchedAt time.Time
	// published is the coordinate this node's gossip metadata carries
	// (nil: none yet), publishedAt when it was set, publishedN how many
	// times (coordLoop).
	published   *coordinate.Coordinate
	publishedAt time.Time
	publishedN  int
	samples     atomic.Int64 // probes that updated this node's coordinate
	// sampledFrom names the first coordMinMembers members whose probes
	// updated this node's coordinate (shouldPublish).
	sampledFrom []string
	// verified is, per member, the newest metadata whose signature this
	// node verified (gossipsig.go); metaTS the timestamp of this node's
	// own last metadata.
	verified map[string]verifiedMeta
	metaTS   uint64
	// waiting holds alive messages a full member table refused whose
	// signature could not be checked yet (memberwait.go).
	waiting map[string]waitingMember
	// pushTo: gossip addresses pushLoop push-pulls with next (at most
	// maxWaiting), pushc wakes it (memberwait.go).
	pushTo []string
	pushc  chan struct{}
	// unverified holds the members memberlist took whose metadata this
	// node did not verify, each with when memberlist dropped it (zero
	// while it lists it), and deadTime and probeEvery memberlist's
	// GossipToTheDeadTime and ProbeInterval (discoveryunverified.go).
	unverified           map[string]unverifiedEntry
	deadTime, probeEvery time.Duration
	// vouch: a member's verified signed metadata vouches for the link
	// address it names (signedAddrLocked); false in a mesh without a CA
	// (Insecure), where any key signs for any name.
	vouch bool
	// linkAdvert is Discovery.LinkAdvertiseAddr, spelled as checkLinkAddr
	// wants it; empty: linkAddr announces the transport's address.
	linkAdvert string
}

// PlainGossipTransport is implemented by a Discovery.Transport whose
// network makes compressing gossip pointless: one where a datagram's size
// costs nothing, such as the simulator's in-process network. When
// PlainGossip is true memberlist sends its messages uncompressed (every
// compressed datagram makes a new LZW writer with a 64 KiB table, and
// every compressed one received a reader); receivers take compressed and
// uncompressed messages alike, so nodes that differ still gossip.
type PlainGossipTransport interface {
	memberlist.NodeAwareTransport
	PlainGossip() bool
}

// Bounds of discovery's tables.
const (
	maxCoords   = 4096
	maxBackoffs = 4096
	maxDialing  = 4
	coordSize   = 1024 // bound of an encoded coordinate in a probe ack
)

// Back-off of dials by link address: a failed dial waits 1 s doubling up
// to 5 min; an address whose certificate names another node than its
// gossip member waits banTime for every member but that node
// (claimFailedSignedLocked). A link that lived less than goodLink counts as
// failed.
//
// An address where no handshake ever proved the member's certificate (a
// member that has the gossip key but no certificate, announcing any
// address, e.g. a victim's) gets unprovenDials failed dials, then one per
// unprovenBan: each dial is a QUIC handshake attempt of about ten packets
// in HandshakeTimeout, so a node sends such an address a few tens of
// packets, then a handful per hour. An address that the member's verified
// signed gossip metadata names (a holder of the member's certificate
// vouches for it: an honest router briefly cut off, restarting, or whose
// link listener was not up yet) is banned for signedBanMin after
// unprovenDials failed dials, doubling with each failed dial after that,
// up to unprovenBan (signedBan): unsigned gossip costs such a member an
// hour, and a certificate holder naming a victim's address gets it seven
// dials in the first hour, then one an hour, and as many in all over the
// victims it names in turn, proving itself between them (strikes,
// discoverystrike.go). A dial the member refused at its link maximum
// (fullBan) is not such a failure, even when the refusal came before this
// node's transport had the link up and the dial returned it as its error:
// the address answered.
const (
	dialMinBackoff = time.Second
	dialMaxBackoff = 5 * time.Minute
	banTime        = 10 * time.Minute
	goodLink       = 10 * time.Second
	lostGrace      = 3 * time.Second
	unprovenDials  = 2
	unprovenBan    = time.Hour
	signedBanMin   = time.Minute
	maxProven      = 4096
	// fullBan is how long a member that refused a link at its maximum is
	// not dialled: the policy picks another meanwhile.
	fullBan = 15 * time.Second
	// fullBanDoublings bounds the doubling of fullBan for a member that
	// refuses again and again (15 s, 30 s, 1, 2, then 4 minutes).
	fullBanDoublings = 4
)

// lostGraceRTTs and lostGraceLate scale lostGrace on a slow node, up to
// lostGraceMax (lostGraceLocked).
const (
	lostGraceRTTs = 10
	lostGraceLate = 4
	lostGraceMax  = time.Minute
)

// Bounds of room-making (a node at its maximum giving up a redundant idle
// link for a member routing does not reach). At most one link per
// roomEvery is given up, by the policy or at admission. The policy makes
// room for a member not vouched for (no handshake proved its certificate
// at its address, and routing never reached it: it may be invented by a
// holder of the gossip key) at most once per unvouchedRoomEvery, enough
// for two full groups whose gossip merged to get a first link across. A
// peer admitted in place of another link gets no such admission again for
// roomBackoff unless routing reaches it over a link that lived goodLink.
const (
	roomEvery          = time.Minute
	unvouchedRoomEvery = 10 * time.Minute
	roomBackoff        = 30 * time.Minute
	maxReached         = maxMembers
	maxGranted         = 1024
)

// gossipMember is what discovery keeps of a memberlist member (memberlist's
// own *Node is mutated under its lock, so it is copied in its callbacks).
type gossipMember struct {
	Member
	gossip string                 // gossip address
	ok     bool                   // same mesh, good metadata, accepted by LinkPolicy
	coord  *coordinate.Coordinate // the member's own, from its metadata; nil when none or invalid
	raw    []byte                 // the metadata
	// verified: raw is the member's verified signed metadata; pending:
	// raw is signed but was not checked yet (the member's certificate was
	// not known), so the policy step checks it once it is (checkPending).
	verified, pending bool
	// linked: held (below) because memberlist dropped the member while
	// this node's link to it is alive (NotifyLeave).
	linked bool
	// held: memberlist does not list the member (it took a dead or left
	// message about it, or never heard of it), but this node keeps it
	// while routing reaches it (or, linked, while its link lives), until
	// keep (expireHeld).
	held bool
	keep time.Time
}

// maxMembers bounds the member table.
const maxMembers = 65536

type addrBackoff struct {
	wait  time.Duration
	until time.Time
	// fails counts the failed dials in a row, until a link dialled
	// there comes up; above 0 and not full, the member is listed in
	// topology.Input.Failed.
	fails int
	// full: the last refusal of a link at this address was the member
	// at its maximum, and no link dialled there came up since
	// (topology.Input.Full).
	full bool
	// signed is when the wait ends for a member whose verified signed
	// metadata names the address: until, with signedBan in place of
	// unprovenBan (banEndLocked).
	signed time.Time
	// holder is the node whose certificate the last dial here proved
	// when it was dialled for another member's claim, until a dial here
	// fails: the wait is the claims', not the holder's (banEndLocked).
	holder string
	// claimed is when other members' claims of the address stop being
	// barred, after a dial for one proved claimHolder's certificate here
	// (claimFailedSignedLocked). A failed dial here ends the holder's exemption
	// from until, not this bar: before, a failed dial of the holder
	// replaced the claims' ban with the holder's back-off of seconds, and
	// a starved node dialled a made-up name at the holder's address again.
	claimed     time.Time
	claimHolder string
	// refused counts the member's refusals at its maximum since the
	// entry was made (a link dialled here that lives goodLink ends it):
	// each doubles the least wait after the next (refusedFullLocked).
	refused int
}

// signedBan is the ban after fails failed dials (unprovenDials or more) to
// a silent address that the member's verified signed metadata names:
// signedBanMin, doubling with each failure, up to unprovenBan.
func signedBan(fails int) time.Duration {
	return min(signedBanMin<<min(max(fails-unprovenDials, 0), 16), unprovenBan)
}

// memberMeta is the gossip metadata of a node (JSON, under
// memberlist.MetaMaxSize).
type memberMeta struct {
	Link string `json:"link"`
	Leaf bool   `json:"leaf,omitempty"`
	Mesh string `json:"mesh"`
	// Coord is the node's Vivaldi coordinate in its wire form
	// (coordWire), absent until it has one (coords.go). Kept raw so that
	// a bad coordinate loses only itself, not the member.
	Coord json.RawMessage `json:"coord,omitempty"`
	// TS orders a node's signed metadata (gossipsig.go).
	TS uint64 `json:"ts,omitempty"`
	// Gossip is the node's gossip address as memberlist advertises it in
	// its alive messages (IP:port, IPv4 unmapped), so that the signature
	// covers it: NotifyAlive refuses metadata that names another address
	// than the alive message carrying it. Absent in the metadata of nodes
	// of versions before it (gossipAddr).
	Gossip string `json:"gossip,omitempty"`
}

func startDiscovery(ctx context.Context, n *Node) (*discovery, error) {
	dc := n.cfg.Discovery
	host, portStr, err := net.SplitHostPort(dc.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("gossip bind address %q: %w", dc.BindAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip bind port %q: %w", portStr, err)
	}
	vc, err := coordinate.NewClient(coordinate.DefaultConfig())
	if err != nil {
		return nil, fmt.Errorf("network coordinates: %w", err)
	}
	d := &discovery{
		n: n, vc: vc, kickc: make(chan struct{}, 1), pushc: make(chan struct{}, 1),
		members: map[string]gossipMember{},
		coords:  map[string]*coordinate.Coordinate{}, rtts: map[string]probeRTT{}, asked: map[string]time.Time{}, dialing: map[string]bool{}, owned: map[string]bool{}, why: map[string]topology.Why{}, held: map[string]links.Link{},
		backoff: map[string]*addrBackoff{}, lost: map[string]time.Time{}, static: map[string]bool{},
		proven: map[string]string{}, unproven: map[string]*addrBackoff{}, hosts: map[string]*hostBudget{}, reached: map[string]bool{}, granted: map[string]time.Time{},
		quiet: map[string]time.Time{}, muted: map[string]*muteEntry{},
		full: ratelog.New(n.log, time.Minute, 1024), bad: ratelog.New(n.log, time.Minute, 1024), verified: map[string]verifiedMeta{}, waiting: map[string]waitingMember{},
		unverified: map[string]unverifiedEntry{},
	}
	if d.stats, err = newDiscoveryMetrics(n.metrics.reg); err != nil {
		return nil, fmt.Errorf("discovery metrics: %w", err)
	}
	d.vouch = !n.identity().Insecure
	_, d.ipLinks = n.Addr().(*net.UDPAddr)
	if a := dc.LinkAdvertiseAddr; a != "" {
		ap, err := ParseAdvertiseAddr(a)
		if err != nil {
			return nil, fmt.Errorf("Discovery.LinkAdvertiseAddr: %w", err)
		}
		if !d.ipLinks {
			return nil, fmt.Errorf("%w: Discovery.LinkAdvertiseAddr %q needs a transport of IP addresses (QUIC); this one's address is %q", ErrInvalidConfig, a, addrString(n.Addr()))
		}
		d.linkAdvert = ap.String()
	}
	d.resolveStatic(ctx)
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	// Links admitted from now on count against MaxLinks, before gossip
	// makes this node known.
	n.mu.Lock()
	n.bound = d
	n.mu.Unlock()
	mc := memberlist.DefaultLANConfig()
	mc.Name = n.cfg.Name
	mc.BindAddr, mc.BindPort = host, port
	if dc.Transport != nil {
		mc.Transport = dc.Transport
		if pt, ok := dc.Transport.(PlainGossipTransport); ok && pt.PlainGossip() {
			mc.EnableCompression = false
		}
	}
	if dc.AdvertiseAddr != "" {
		ap, err := ParseAdvertiseAddr(dc.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("Discovery.AdvertiseAddr: %w", err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ap.Addr().String(), int(ap.Port())
	}
	if len(dc.Key) > 0 {
		mc.SecretKey = dc.Key
	} else {
		n.log.Warn("gossip is NOT encrypted: set a gossip key (Discovery.Key, --gossip-key-file)")
	}
	mc.Delegate = d
	mc.Events = d
	mc.Ping = d
	mc.Alive = d
	// A member declared dead may be claimed at another address at once
	// (a restart at a new address): NotifyAlive lets only metadata signed
	// by the member's certificate naming that address move it, and
	// NotifyLeave push-pulls with the address it names.
	mc.DeadNodeReclaimTime = time.Nanosecond
	d.deadTime, d.probeEvery = mc.GossipToTheDeadTime, mc.ProbeInterval
	gl := n.log.With("component", "gossip")
	d.logw = &slogWriter{l: gl, warns: newGossipLineLog(gl)}
	mc.Logger = log.New(d.logw, "", 0)
	if d.guard, err = guardGossip(mc, n); err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", dc.BindAddr, err)
	}
	// The guard holds Discovery.Transport from now on: its Shutdown, or
	// memberlist's, shuts it down.
	n.mu.Lock()
	n.gossipTr = nil
	n.mu.Unlock()
	if dc.AdvertiseAddr == "" && dc.Transport == nil {
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if src := sourceToward(jctx, d.resolver(), d.resolveJoin(jctx)); src != nil {
				mc.AdvertiseAddr, mc.AdvertisePort = src.String(), mc.BindPort
				n.log.Info("gossip bound to every address: announcing the one that reaches the members to join", "address", net.JoinHostPort(mc.AdvertiseAddr, strconv.Itoa(mc.BindPort)))
			}
			cancel()
		}
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = d.guard.Shutdown()
		return nil, fmt.Errorf("start gossip on %s: %w", dc.BindAddr, err)
	}
	ln := ml.LocalNode()
	d.self = net.UDPAddr{IP: ln.Addr, Port: int(ln.Port)}
	d.ml = ml
	d.keyring = mc.Keyring // made by memberlist from SecretKey
	// The link address needs the gossip address, known only now.
	if err := ml.UpdateNode(time.Second); err != nil {
		n.log.Warn("gossip metadata update failed", "err", err)
	}
	if len(dc.Join) > 0 {
		jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs := d.resolveJoin(jctx)
		cancel()
		d.mu.Lock()
		d.joinedHostsLocked(addrs, time.Now())
		d.mu.Unlock()
		if len(addrs) == 0 {
			n.log.Warn("gossip join: no address yet; retrying", "join", dc.Join, "first_retry", min(joinRetryFirst, dc.JoinInterval), "every", dc.JoinInterval)
		} else if _, err := ml.Join(addrs); err != nil {
			n.log.Warn("gossip join failed; retrying", "join", addrs, "err", err, "first_retry", min(joinRetryFirst, dc.JoinInterval), "every", dc.JoinInterval)
		}
	}
	events, unsubscribe, err := n.Subscribe(64)
	if err != nil {
		ml.Shutdown()
		return nil, fmt.Errorf("start gossip: %w", err)
	}
	n.wg.Add(4)
	go func() {
		defer n.wg.Done()
		defer unsubscribe()
		d.policyLoop(events)
	}()
	go func() {
		defer n.wg.Done()
		d.pushLoop()
	}()
	go func() {
		defer n.wg.Done()
		d.joinLoop()
	}()
	go func() {
		defer n.wg.Done()
		d.coordLoop()
	}()
	return d, nil
}

// resolveStatic records the static link addresses, with host names also
// resolved, so that the policy recognises their links (whose remote
// address is an IP) and never counts or drops them.
func (d *discovery) resolveStatic(ctx context.Context) {
	r := d.resolver()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, a := range d.n.cfg.StaticLinks {
		d.static[a] = true
		host, port, err := net.SplitHostPort(a)
		if err != nil || net.ParseIP(host) != nil {
			continue
		}
		ips, err := r.LookupIPAddr(ctx, host)
		if err != nil {
			d.n.log.Debug("static link address does not resolve", "addr", a, "err", err)
			continue
		}
		for _, ip := range ips[:min(len(ips), 16)] {
			d.static[net.JoinHostPort(ip.IP.String(), port)] = true
		}
	}
}

// joinRetryFirst is the first wait before joining again while the node
// knows no other member (joinLoop).
const joinRetryFirst = time.Second

// joinLoop resolves Join again every JoinInterval and joins addresses that
// are not members yet. While the node knows no other member (its join
// at start failed: the seed not up yet, or its streams refused or timed
// out on a loaded machine) it tries again sooner, after 1 s, then twice
// as long each time up to JoinInterval: a node alone has nothing to
// gossip with, and joining is all it can do.
func (d *discovery) joinLoop() {
	dc := d.n.cfg.Discovery
	if len(dc.Join) == 0 {
		return
	}
	wait, alone := dc.JoinInterval, false
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		switch was := alone; {
		case d.ml.NumMembers() > 1:
			wait, alone = dc.JoinInterval, false
		case !was:
			wait, alone = min(joinRetryFirst, dc.JoinInterval), true
		default:
			wait = min(2*wait, dc.JoinInterval)
		}
		t.Reset(wait)
		select {
		case <-d.n.ctx.Done():
			return
		case <-t.C:
		}
		d.joinAgain()
	}
}

// joinAgain resolves Join and joins the addresses that are not members
// yet.
func (d *discovery) joinAgain() {
	dc := d.n.cfg.Discovery
	ctx, cancel := context.WithTimeout(d.n.ctx, min(dc.JoinInterval, 10*time.Second))
	addrs := d.resolveJoin(ctx)
	cancel()
	known := map[string]bool{}
	d.mu.Lock()
	d.joinedHostsLocked(addrs, time.Now())
	for _, m := range d.members {
		known[m.gossip] = true
	}
	d.mu.Unlock()
	var fresh []string
	for _, a := range addrs {
		if !known[a] {
			fresh = append(fresh, a)
		}
	}
	if len(fresh) == 0 {
		return
	}
	if _, err := d.ml.Join(fresh); err != nil {
		d.n.log.Debug("gossip join failed", "join", fresh, "err", err)
	}
}

// every calls f every interval until the node closes.
func (d *discovery) every(interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-d.n.ctx.Done():
			return
		case <-t.C:
		}
		f()
	}
}

// maxJoinAddrs bounds the addresses one resolution of Join yields.
const maxJoinAddrs = 256

// resolveJoin turns Join into gossip addresses: dns:NAME[:PORT] gives
// every A/AAAA record of NAME (port default: this node's gossip port),
// dns+srv:NAME every SRV target and port; anything else is used as is.
func (d *discovery) resolveJoin(ctx context.Context) []string {
	dc := d.n.cfg.Discovery
	r := d.resolver()
	_, defPort, _ := net.SplitHostPort(dc.BindAddr)
	if d.ml != nil {
		defPort = strconv.Itoa(d.self.Port)
	}
	addrs, err := resolveJoin(ctx, r, dc.Join, defPort)
	if err != nil {
		d.n.log.Warn("gossip join: resolving failed", "join", dc.Join, "err", err)
	}
	return addrs
}

// ErrBadJoin: a Join entry that cannot be resolved.
var ErrBadJoin = errors.New("bad gossip join address")

// checkJoinPort refuses Join entry j when its host is empty or its port
// is not from 1 to 65535.
func checkJoinPort(j, host, port string) error {
	if pn, err := strconv.ParseUint(port, 10, 16); host == "" || err != nil || pn == 0 {
		return fmt.Errorf("%w: %q: want HOST[:PORT], dns:NAME[:PORT] or dns+srv:NAME, PORT from 1 to 65535", ErrBadJoin, j)
	}
	return nil
}

// CheckJoin refuses, as New does, a Discovery.Join entry that no
// resolution can make an address of: an empty name, or a port not from 1
// to 65535 (before New refused it, the node retried it every JoinInterval
// for as long as it ran). The error matches ErrBadJoin and quotes j.
func CheckJoin(j string) error {
	addr := j
	switch {
	case strings.HasPrefix(j, "dns+srv:"):
		return checkJoinPort(j, strings.TrimPrefix(j, "dns+srv:"), "1")
	case strings.HasPrefix(j, "dns:"):
		addr = strings.TrimPrefix(j, "dns:")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = addr, "1" // no port: the local gossip port
	}
	return checkJoinPort(j, host, port)
}

func resolveJoin(ctx context.Context, r *net.Resolver, join []string, defPort string) ([]string, error) {
	var out []string
	var errs []error
	seen := map[string]bool{}
	addHost := func(host, port string) error {
		if len(out) >= maxJoinAddrs {
			return nil // enough to join: spare the DNS server the rest
		}
		ips, err := r.LookupIPAddr(ctx, host)
		if err != nil {
			return fmt.Errorf("%w: resolve %s: %w", ErrBadJoin, host, err)
		}
		for _, ip := range ips {
			a := net.JoinHostPort(ip.IP.String(), port)
			if !seen[a] && len(out) < maxJoinAddrs {
				seen[a] = true
				out = append(out, a)
			}
		}
		return nil
	}
	for _, j := range join {
		switch {
		case strings.HasPrefix(j, "dns+srv:"):
			name := strings.TrimPrefix(j, "dns+srv:")
			_, srvs, err := r.LookupSRV(ctx, "", "", name)
			if err != nil {
				errs = append(errs, fmt.Errorf("%w: SRV %s: %w", ErrBadJoin, name, err))
				continue
			}
			for _, srv := range srvs {
				if err := addHost(strings.TrimSuffix(srv.Target, "."), strconv.Itoa(int(srv.Port))); err != nil {
					errs = append(errs, err)
				}
			}
		case strings.HasPrefix(j, "dns:"):
			host, port := strings.TrimPrefix(j, "dns:"), defPort
			if h, p, err := net.SplitHostPort(host); err == nil {
				host, port = h, p
			}
			if err := checkJoinPort(j, host, port); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := addHost(host, port); err != nil {
				errs = append(errs, err)
			}
		default:
			if !seen[j] && len(out) < maxJoinAddrs {
				seen[j] = true
				out = append(out, j)
			}
		}
	}
	return out, errors.Join(errs...)
}

// resolver is the resolver of the join addresses (Discovery.Resolver,
// default net.DefaultResolver).
func (d *discovery) resolver() *net.Resolver {
	if r := d.n.cfg.Discovery.Resolver; r != nil {
		return r
	}
	return net.DefaultResolver
}

// sourceToward is the local address the kernel sends from to the first
// of addrs it routes to (a UDP "connect" sends nothing; a host name is
// looked up with r within ctx), loopback aside:
// for gossip bound to every address, the address a member to join
// reaches this node at. memberlist would take the first private address
// of the interface holding the default route, which on a host with two
// networks may be one no member can reach: they then declared the node
// dead within seconds of its join.
func sourceToward(ctx context.Context, r *net.Resolver, addrs []string) net.IP {
	dialer := net.Dialer{Resolver: r}
	// IPv4 first, as memberlist prefers: a join name with A and AAAA
	// records on a dual-stack host would otherwise announce an IPv6
	// address to members that may reach only IPv4.
	addrs = slices.Clone(addrs)
	slices.SortStableFunc(addrs, func(a, b string) int { return cmp.Compare(v6(a), v6(b)) })
	for _, a := range addrs {
		c, err := dialer.DialContext(ctx, "udp", a)
		if err != nil {
			continue
		}
		ua, _ := c.LocalAddr().(*net.UDPAddr)
		c.Close()
		if ua != nil && !ua.IP.IsLoopback() && !ua.IP.IsUnspecified() {
			return ua.IP
		}
	}
	return nil
}

// v6 is 1 for an IPv6 literal HOST:PORT, else 0.
func v6(addr string) int {
	if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().Unmap().Is6() {
		return 1
	}
	return 0
}

func (d *discovery) addr() string {
	return d.self.String()
}

// linkAddr is the QUIC address announced to others:
// Discovery.LinkAdvertiseAddr, else the transport's address with an
// unspecified IP replaced by the gossip address's IP.
func (d *discovery) linkAddr() string {
	if d.linkAdvert != "" {
		return d.linkAdvert
	}
	a, ok := d.n.Addr().(*net.UDPAddr)
	if !ok {
		return addrString(d.n.Addr())
	}
	ip := a.IP
	if ip == nil || ip.IsUnspecified() {
		ip = d.self.IP
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(a.Port))
}

// NodeMeta implements memberlist.Delegate: this node's metadata, signed
// with its certificate's key (gossipsig.go) under a new timestamp.
func (d *discovery) NodeMeta(limit int) []byte {
	if d.ml == nil {
		return nil // called once during Create, before the address is known
	}
	meta := memberMeta{Link: d.linkAddr(), Leaf: d.n.cfg.Leaf, Mesh: d.n.cfg.Mesh}
	if ga := gossipAddrPort(d.self.IP, d.self.Port); ga.IsValid() {
		meta.Gossip = ga.String()
	}
	d.mu.Lock()
	pub := d.published
	meta.TS = d.nextMetaTSLocked(time.Now())
	d.mu.Unlock()
	if pub != nil {
		meta.Coord, _ = json.Marshal(coordWire(pub))
	}
	b, _ := json.Marshal(meta)
	if len(b)+metaSigLen > limit && meta.Coord != nil {
		meta.Coord = nil // the address and mesh matter more
		b, _ = json.Marshal(meta)
	}
	if len(b)+metaSigLen > limit {
		return nil
	}
	id := d.n.identity()
	if len(id.Key) != ed25519.PrivateKeySize {
		return b
	}
	return signMeta(id.Key, d.n.cfg.Mesh, d.n.cfg.Name, b)
}

// NotifyMsg, GetBroadcasts, LocalState and MergeRemoteState implement
// memberlist.Delegate; circuitmesh gossips metadata only.
func (d *discovery) NotifyMsg([]byte)                           {}
func (d *discovery) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *discovery) LocalState(join bool) []byte                { return nil }
func (d *discovery) MergeRemoteState(buf []byte, join bool)     {}

// NotifyJoin implements memberlist.EventDelegate.
func (d *discovery) NotifyJoin(m *memberlist.Node) { d.record(m) }

// NotifyUpdate implements memberlist.EventDelegate.
func (d *discovery) NotifyUpdate(m *memberlist.Node) { d.record(m) }

// record copies a joined or updated member (called with memberlist's lock
// held: it must not call memberlist). When this node holds verified
// metadata of the member that memberlist's differs from, the verified
// metadata stands: memberlist took the other without a signature this
// node could check (before it knew the member's certificate), or keeps an
// older one at a higher incarnation (a replay at the largest incarnation,
// which the member cannot outbid).
func (d *discovery) record(m *memberlist.Node) {
	gossip := net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port)))
	d.mu.Lock()
	d.unverifiedListedLocked(m.Name, gossip)
	d.mu.Unlock()
	d.setMember(m.Name, gossip, m.Meta, fromMemberlist)
}

// How setMember came to be called: memberlist lists the member
// (NotifyJoin, NotifyUpdate), or newer verified metadata of a member that
// may be listed (NotifyAlive).
const (
	fromMemberlist = iota
	fromVerified
	// fromWaiting: a member a full table refused, whose metadata has
	// verified since (memberwait.go): taken as held unless listed by now.
	fromWaiting
)

// setMember sets member name's entry from its metadata raw (the verified
// metadata held instead, if any). fromVerified changes only a listed
// member and keeps whether it is held. d.mu is not held.
func (d *discovery) setMember(name, gossip string, raw []byte, from int) {
	gm := gossipMember{gossip: gossip}
	d.mu.Lock()
	if v, held := d.verified[name]; held {
		raw, gm.verified = v.raw, true
		if prev, known := d.members[name]; from == fromVerified && known && prev.verified && bytes.Equal(prev.raw, raw) {
			// The entry is of this metadata already: NotifyAlive comes
			// here for every copy of an alive message (a dozen or so
			// each in a mesh of hundreds), and parsing its coordinate
			// again would change nothing.
			d.mu.Unlock()
			return
		}
	}
	d.mu.Unlock()
	var signed bool
	gm.Member, gm.coord, gm.ok, signed = d.member(name, raw)
	gm.Name, gm.raw, gm.pending = name, raw, gm.ok && signed && !gm.verified
	d.mu.Lock()
	prev, known := d.members[name]
	switch {
	case from == fromVerified && !known, from == fromWaiting && (known || !gm.verified):
		d.mu.Unlock()
		return
	case from == fromVerified:
		gm.gossip, gm.held, gm.linked, gm.keep = prev.gossip, prev.held, prev.linked, prev.keep
	case from == fromWaiting:
		gm.held, gm.keep = true, time.Now().Add(waitingFor)
	}
	if known || len(d.members) < maxMembers || gm.verified {
		// Verified members pass a full table (memberwait.go).
		d.members[name] = gm
	}
	d.mu.Unlock()
	// A new coordinate alone waits for the next periodic step: with
	// hundreds of members publishing theirs, kicking the policy on each
	// would run it as often as stepGap allows.
	if !known || prev.Member != gm.Member || prev.ok != gm.ok || prev.gossip != gm.gossip {
		d.kick()
	}
}

// movedLocked is the gossip address that m's verified signed metadata
// names when it is not the one memberlist dropped m at ("" if none): the
// member restarted there (a rescheduled container, a new lease), and
// memberlist refused its alive messages while it listed the old address.
// memberlist learns of the new one in the next push-pull between them,
// up to PushPullInterval later (30 s), unless this node push-pulls with it
// now. d.mu is held.
func (d *discovery) movedLocked(m *memberlist.Node) string {
	v, ok := d.verified[m.Name]
	if !ok || !v.gossip.IsValid() {
		return ""
	}
	ip, _ := netip.AddrFromSlice(m.Addr)
	if netip.AddrPortFrom(ip.Unmap(), m.Port) == netip.AddrPortFrom(v.gossip.Addr().Unmap(), v.gossip.Port()) {
		return ""
	}
	return v.gossip.String()
}

// NotifyLeave implements memberlist.EventDelegate. A member whose
// verified signed metadata this node holds and that routing reaches is
// kept (held) while routing reaches it: memberlist takes a dead or left
// message about any member from anyone with the gossip key, at an
// incarnation the member cannot outbid, and routing is authenticated
// (certified origins over live links). A member memberlist drops (its
// probes went unanswered, which on a node starved of CPU they do while
// the member is fine) and that this node holds a live link to is kept
// while the link lives, whatever its metadata: the link's certificate
// proved the member, and the link's own failure detector finds it
// alive. Memberlist does not say whether the member was declared dead or
// left: the Node it passes is never given a State (the member's state is
// a field of memberlist's own beside it), so m.State is always alive
// here. A member that leaves tells its (QUIC) links it drains before it
// leaves gossip, and closes them as it goes: it is not kept for a draining link,
// and a member kept for its link goes once the link says it drains.
func (d *discovery) NotifyLeave(m *memberlist.Node) {
	d.mu.Lock()
	d.unverifiedDroppedLocked(m.Name, time.Now())
	gm, ok := d.members[m.Name]
	moved := d.movedLocked(m)
	d.mu.Unlock()
	if moved != "" {
		d.pushWaiting([]string{moved})
	}
	linked := ok && gm.ok && d.liveLink(m.Name)
	if ok && gm.ok && gm.verified {
		if rt, ok := d.n.router.lookup(m.Name); ok && rt.Reachable {
			d.hold(m.Name, gm, linked)
			d.n.log.Debug("gossip says a member left, but routing reaches it: keeping it", "member", m.Name, "state", m.State)
			return
		}
	}
	if linked {
		d.hold(m.Name, gm, true)
		d.n.log.Debug("gossip dropped a member, but its link is alive: keeping it", "member", m.Name)
		return
	}
	d.forget(m.Name)
}

// hold keeps member name, whose entry was gm, listed after memberlist
// dropped it, unless its entry changed meanwhile; linked: while this
// node's link to it is alive (expireHeld).
func (d *discovery) hold(name string, gm gossipMember, linked bool) {
	d.mu.Lock()
	if cur, ok := d.members[name]; ok && bytes.Equal(cur.raw, gm.raw) {
		cur.held, cur.linked, cur.keep = true, linked, time.Now()
		d.members[name] = cur
	}
	d.mu.Unlock()
}

// liveLink reports whether this node holds a link to peer that has not
// ended and whose peer did not say it drains: its certificate proved the
// peer, and the link's own failure detector (QUIC's keep-alives and idle
// timeout) finds it alive.
func (d *discovery) liveLink(peer string) bool {
	l := d.n.link(peer)
	return l != nil && !linkEnded(l) && !l.Quality().Draining
}

// forget removes a member.
func (d *discovery) forget(name string) {
	d.mu.Lock()
	delete(d.members, name)
	delete(d.coords, name)
	delete(d.rtts, name)
	delete(d.asked, name)
	delete(d.lost, name)
	d.mu.Unlock()
	d.metas.forget(name)
	d.vc.ForgetNode(name)
	d.kick()
}

// expireHeld forgets the held members (NotifyLeave) that routing has not
// reached since their keep time, nor, for a member held because its link
// is alive, that this node held no live link to since then.
func (d *discovery) expireHeld(now time.Time) {
	var held []string
	d.mu.Lock()
	for name, gm := range d.members {
		if gm.held {
			held = append(held, name)
		}
	}
	d.mu.Unlock()
	for _, name := range held {
		rt, ok := d.n.router.lookup(name)
		reached := ok && rt.Reachable
		linked := d.liveLink(name)
		d.mu.Lock()
		gm, ok := d.members[name]
		reached = reached || gm.linked && linked
		expired := ok && gm.held && !reached && !now.Before(gm.keep)
		if ok && gm.held && reached {
			gm.keep = now.Add(d.lostGraceLocked())
			d.members[name] = gm
		}
		d.mu.Unlock()
		if expired {
			d.forget(name)
		}
	}
}

// NotifyAlive implements memberlist.AliveDelegate: it refuses, before
// memberlist takes it (so that it raises no incarnation), an alive
// message about another member whose name is not a valid node name
// (identity.ValidateName), or whose metadata no node of this mesh
// sends (empty, beyond memberlist.MetaMaxSize, unparsable, without a
// link address, of another mesh, naming another gossip address than the
// message's: checkGossip), or whose gossip address is not 4 or 16 bytes
// long, or whose signature fails (checkSigned: a bad signature under the
// member's known certificate key, older than the verified metadata held,
// or unverifiable while verified metadata is held). Anyone holding the
// gossip key can send an alive message about any name, and memberlist
// keeps the one with the highest incarnation; the member's refutation
// adds one to a 32-bit counter, so a forgery at the largest incarnation
// would never be refuted. Newer verified metadata is recorded at once,
// so that it stands even when memberlist drops the message for its
// incarnation. Metadata that passes unverified is still only a claim:
// links prove names (dial), and a live link whose peer routing reaches
// is not closed because of what gossip says (step). Called with
// memberlist's locks held: it must not call memberlist.
func (d *discovery) NotifyAlive(m *memberlist.Node) error {
	if m.Name == d.n.cfg.Name {
		return nil
	}
	if err := identity.ValidateName(m.Name); err != nil {
		// No certificate carries such a name, and Members would list
		// it to whoever prints them.
		return fmt.Errorf("member: %w: %w", errBadMeta, err)
	}
	if len(m.Meta) == 0 {
		// A node sets its metadata before it joins anyone.
		return fmt.Errorf("member %s: empty metadata: %w", m.Name, errBadMeta)
	}
	if l := len(m.Addr); l != net.IPv4len && l != net.IPv6len {
		// An IP address: memberlist keeps, and pushes on, any bytes.
		return fmt.Errorf("member %s: gossip address of %d bytes: %w", m.Name, l, errBadMeta)
	}
	if len(m.Meta) > memberlist.MetaMaxSize {
		// No node sends more (memberlist bounds NodeMeta), and memberlist
		// keeps, and pushes on, whatever it takes.
		return fmt.Errorf("member %s: %d bytes of metadata, beyond %d: %w", m.Name, len(m.Meta), memberlist.MetaMaxSize, errBadMeta)
	}
	// Only members' metadata is cached: names memberlist never takes
	// (refused here) never leave, so they must not fill the cache.
	d.mu.Lock()
	_, member := d.members[m.Name]
	full := !member && len(d.members) >= maxMembers
	d.mu.Unlock()
	parse := parseMeta
	if member {
		parse = func(raw []byte) (parsedMeta, error) { return d.metas.parse(m.Name, raw) }
	}
	meta, err := parse(m.Meta)
	if err != nil {
		return fmt.Errorf("member %s: metadata: %w", m.Name, err)
	}
	if meta.Link == "" {
		return fmt.Errorf("member %s: no link address: %w", m.Name, errBadMeta)
	}
	if d.ipLinks {
		if err := checkLinkAddr(meta.Link); err != nil {
			d.guard.refusedAlive(refuseLink)
			return fmt.Errorf("member %s: %w", m.Name, err)
		}
	}
	if meta.Mesh != d.n.cfg.Mesh {
		return fmt.Errorf("member %s: of mesh %q, not %q: %w", m.Name, meta.Mesh, d.n.cfg.Mesh, errBadMeta)
	}
	if err := meta.checkGossip(m.Addr, m.Port); err != nil {
		// The member's own metadata replayed at another address (before
		// any signature check: a copy of verified metadata passes it).
		return fmt.Errorf("member %s: %w", m.Name, err)
	}
	now := time.Now()
	verified, err := d.checkSigned(m.Name, m.Meta, meta, now, d.guard.budget)
	if err != nil {
		return err
	}
	if !verified {
		// Refused here, memberlist does not keep the name either: a
		// push-pull of 70,000 made-up members left them all in
		// memberlist, probed one a second, while the table stopped at
		// maxMembers. Signed metadata waits for the member's
		// certificate (memberwait.go).
		d.mu.Lock()
		err := d.movedUnverifiedLocked(m.Name, net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))))
		if err != nil {
			d.mu.Unlock()
			return err
		}
		err = fmt.Errorf("member %s: %d members known: %w", m.Name, maxMembers, errMembersFull)
		if !full {
			err = d.admitUnverifiedLocked(m.Name)
		}
		if err != nil && meta.sig != nil {
			d.waitLocked(m, m.Meta, now)
		}
		d.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if verified {
		d.setMember(m.Name, "", m.Meta, fromVerified)
	}
	return nil
}

// errBadMeta is why NotifyAlive refuses an alive message.
var errBadMeta = errors.New("gossip metadata refused")

// errMembersFull is why NotifyAlive refuses a new member: the member table
// is at its bound.
var errMembersFull = errors.New("member table full")

// AckPayload implements memberlist.PingDelegate: probe acks carry this
// node's Vivaldi coordinate.
func (d *discovery) AckPayload() []byte {
	own := d.vc.GetCoordinate()
	if checkCoordinate(own) != nil {
		return nil // others would refuse it
	}
	b, err := json.Marshal(own)
	if err != nil || len(b) > coordSize {
		return nil
	}
	return b
}

// NotifyPingComplete implements memberlist.PingDelegate: a probe's RTT and
// the member's coordinate update this node's coordinate.
func (d *discovery) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	d.probes.Add(1)
	if rtt > 0 {
		d.mu.Lock()
		if r, ok := d.rtts[other.Name]; ok || len(d.rtts) < maxCoords {
			d.rtts[other.Name] = probeRTT{last: rtt, prev: r.last}
		}
		d.mu.Unlock()
	}
	c, err := decodeCoordinate(payload)
	if err != nil {
		d.n.log.Debug("ignoring a probe ack's coordinate", "member", other.Name, "err", err)
		return
	}
	if !plausibleSample(d.vc.GetCoordinate(), c, rtt) {
		d.n.log.Debug("ignoring a probe ack's coordinate", "member", other.Name, "err", "far beyond the measured round trip", "rtt", rtt)
		return
	}
	if _, err := d.vc.Update(other.Name, c, rtt); err != nil {
		d.n.log.Debug("coordinate update rejected", "member", other.Name, "err", err)
		return
	}
	d.samples.Add(1)
	d.mu.Lock()
	if len(d.sampledFrom) < coordMinMembers && !slices.Contains(d.sampledFrom, other.Name) {
		d.sampledFrom = append(d.sampledFrom, other.Name)
	}
	if _, ok := d.coords[other.Name]; ok || len(d.coords) < maxCoords {
		d.coords[other.Name] = c
	}
	d.mu.Unlock()
}

// probeRTT is the round trip of the last two direct probes of a member.
type probeRTT struct{ last, prev time.Duration }

// rtt is the smaller of the two (a probe delayed by a busy member or
// network counts less), 0 when none.
func (r probeRTT) rtt() time.Duration {
	if r.prev > 0 && r.prev < r.last {
		return r.prev
	}
	return r.last
}

// errBadCoordinate: a probe ack carried no usable coordinate.
var errBadCoordinate = errors.New("bad network coordinate")

// decodeCoordinate parses a coordinate from a probe ack.
func decodeCoordinate(b []byte) (*coordinate.Coordinate, error) {
	if len(b) == 0 || len(b) > coordSize {
		return nil, fmt.Errorf("%w: %d bytes", errBadCoordinate, len(b))
	}
	var c coordinate.Coordinate
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadCoordinate, err)
	}
	if err := checkCoordinate(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

func (d *discovery) kick() {
	select {
	case d.kickc <- struct{}{}:
	default:
	}
}

// member parses a gossip member's metadata raw, and the coordinate it
// carries (nil when none or invalid); ok is false for this node, another
// mesh, bad metadata, or a member the LinkPolicy rejects; signed reports
// a signature (not checked here).
func (d *discovery) member(name string, raw []byte) (mem Member, coord *coordinate.Coordinate, ok, signed bool) {
	if name == d.n.cfg.Name || len(raw) == 0 {
		return Member{}, nil, false, false
	}
	meta, err := d.metas.parse(name, raw)
	if err != nil || meta.Link == "" || meta.Mesh != d.n.cfg.Mesh || d.ipLinks && checkLinkAddr(meta.Link) != nil {
		return Member{}, nil, false, false
	}
	mem = Member{Name: name, LinkAddr: meta.Link, Leaf: meta.Leaf}
	if p := d.n.cfg.Discovery.LinkPolicy; p != nil && !p(mem) {
		return Member{}, nil, false, false
	}
	return mem, metaCoord(meta.Coord), true, meta.sig != nil
}

// checkPending checks the signed metadata of members taken before their
// certificate was known, once it is: metadata that fails loses its member
// its entry's address (the member is not dialled) until metadata that
// passes arrives. It runs in the policy step, not in memberlist's
// callbacks, and checks each metadata once.
func (d *discovery) checkPending(now time.Time) {
	type pend struct {
		name string
		raw  []byte
	}
	var todo []pend
	d.mu.Lock()
	for name, gm := range d.members {
		if gm.pending {
			todo = append(todo, pend{name, gm.raw})
		}
	}
	d.mu.Unlock()
	for _, p := range todo {
		if _, known := d.memberKey(p.name, now); !known {
			continue
		}
		meta, err := parseMeta(p.raw)
		var verified bool
		if err == nil {
			verified, err = d.checkSigned(p.name, p.raw, meta, now, nil)
		}
		d.mu.Lock()
		gm, ok := d.members[p.name]
		if ok && bytes.Equal(gm.raw, p.raw) {
			gm.pending = false
			gm.verified = verified
			if err != nil {
				gm.ok = false
			}
			d.members[p.name] = gm
		}
		d.mu.Unlock()
		if err != nil {
			d.bad.Warn("sig:"+p.name, "gossip metadata of a member fails its signature; not dialling the address it names",
				"member", p.name, "err", err)
		}
	}
}

// policyLoop runs the link policy on events and every Interval, at most
// once per settle period, and with many members no sooner than stepGap
// after the previous step.
func (d *discovery) policyLoop(events <-chan Event) {
	interval := d.n.cfg.Discovery.Interval
	t := time.NewTimer(policySettle)
	defer t.Stop()
	var s settleTimer
	s.schedule(time.Now(), policySettle)
	for {
		select {
		case <-d.n.ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if now := time.Now(); s.event(now) {
				t.Reset(s.due.Sub(now))
			}
			continue
		case <-d.kickc:
			if now := time.Now(); s.event(now) {
				t.Reset(s.due.Sub(now))
			}
			continue
		case <-t.C:
		}
		d.noteLate(time.Since(s.due))
		members := d.step(time.Now())
		// Jitter so that nodes started together do not act in lockstep.
		wait := interval/2 + rand.N(interval/2+1)
		now := time.Now()
		s.schedule(now, wait)
		s.earliest = now.Add(stepGap(members, interval))
		t.Reset(wait)
	}
}

// noteLate records that the policy's timer fired late after its due
// time: the latest lateness, or the one before it less an eighth, if that
// is more (a starved node is late in bursts).
func (d *discovery) noteLate(late time.Duration) {
	d.mu.Lock()
	d.late = max(late, d.late-d.late/8, 0)
	d.mu.Unlock()
}

// lostGraceLocked is how long routing may not reach a member before the
// member counts as lost (the policy dials it as a repair, and gives up a
// link for it at the maximum; admission makes room for it): lostGrace,
// or lostGraceRTTs times the largest RTT of this node's links, or
// lostGraceLate times how late its policy timer fires, whichever is
// longest. On a node starved of CPU, links' RTTs are seconds and routing
// takes as long to bring a route around a changed link: a fixed grace had
// such nodes give up links for members that routing was about to reach,
// which cut off others in turn. It is at most lostGraceMax: a neighbour
// that holds back its answers to this node's probes reads as a link of
// seconds, and would otherwise put off this node's repair of a partition
// for ten times as long. d.mu is held.
func (d *discovery) lostGraceLocked() time.Duration {
	return min(max(lostGrace, lostGraceRTTs*d.slowRTT, lostGraceLate*d.late), lostGraceMax)
}

// policySettle is how long after an event the policy runs: events that
// come together (a member joining, its link coming up, its routes) are
// taken in one step.
const policySettle = 100 * time.Millisecond

// stepGapPerMember is how much the least time between two steps that
// events bring forward grows per member: a step looks at every member,
// so without it a node that hears of changes without pause (a mass join)
// steps every policySettle at a cost that grows with the members, and
// the mesh's policy work per second with their square. From 200 members
// on the gap exceeds policySettle (0.5 s at 1000 members).
const stepGapPerMember = 500 * time.Microsecond

// stepGap is the least time after a step before events bring the next
// one: stepGapPerMember per member, at most half the periodic interval.
func stepGap(members int, interval time.Duration) time.Duration {
	return min(time.Duration(members)*stepGapPerMember, interval/2)
}

// settleTimer decides when the policy's next step is due. An event
// brings the step forward to policySettle after it, but not before
// earliest, unless one is due sooner already: later events do not push
// it back, so a node that hears of changes without pause (hundreds of
// members joining) still steps every policySettle (or stepGap) instead of
// waiting for a quiet moment that may not come.
type settleTimer struct{ due, earliest time.Time }

// schedule sets the next step after wait.
func (s *settleTimer) schedule(now time.Time, wait time.Duration) { s.due = now.Add(wait) }

// event reports whether an event at now moves the next step to
// policySettle after it, or to earliest if that is later (the caller
// resets its timer to due).
func (s *settleTimer) event(now time.Time) bool {
	at := now.Add(policySettle)
	if at.Before(s.earliest) {
		at = s.earliest
	}
	if at.Before(s.due) {
		s.due = at
		return true
	}
	return false
}

// step runs the policy once and applies its decision. It returns the
// number of members it looked at.
func (d *discovery) step(now time.Time) int {
	n := d.n
	if !n.up() {
		return 0
	}
	d.stepMu.Lock()
	defer d.stepMu.Unlock()
	sc := stepScratchPool.Get().(*stepScratch)
	defer sc.put()
	alive, reachable, routes := sc.alive, sc.reachable, sc.routes
	d.checkPending(now)
	d.checkWaiting(now)
	d.expireHeld(now)
	d.expireUnverified(now)
	// Memberlist calls the delegates with its own locks held: never call
	// it with d.mu held.
	d.mu.Lock()
	names := sc.names
	for _, gm := range d.members {
		if gm.ok {
			alive[gm.Name] = gm.Member
			names = append(names, gm.Name)
		}
	}
	d.mu.Unlock()
	sc.names = names
	sort.Strings(names)
	// Neighbours routing reaches only by the route their link implies
	// (they never spoke routing over it, as a mute member does) are not
	// reached: they vouch for nothing (d.reached).
	var implied map[string]bool
	for _, name := range names {
		// The route alone: Peer's alternates (every next hop) cost most
		// of a step with hundreds of members and are not used here.
		if rt, ok := n.router.lookup(name); ok && rt.Reachable {
			reachable[name] = true
			routes[name] = routeHop{cost: uint32(rt.Metric), next: rt.NextHop}
			if rt.NextHop == name && !n.router.heard(name) {
				if implied == nil {
					implied = map[string]bool{}
				}
				implied[name] = true
			}
		}
	}
	// Links over which routing heard nothing of their peer for the grace
	// are closed first, so that this step may fill their slots.
	current := d.muteLinks(n.Links(), n.router.heard, now)
	route := routeLatency(sc.route, sc.excess, routes, current, uint32(n.router.drainPenalty))
	// Peers of links that gossip does not list but routing reaches: the
	// link, authenticated and live, outweighs gossip, which anyone with
	// the gossip key can forge (a dead message, or an alive one at the
	// largest incarnation, which the member cannot refute).
	var routed map[string]bool
	for _, l := range current {
		if _, ok := alive[l.Peer]; !ok {
			if rt, ok := n.router.lookup(l.Peer); ok && rt.Reachable {
				if routed == nil {
					routed = map[string]bool{}
				}
				routed[l.Peer] = true
			}
		}
	}
	alt := d.alternatesOf(names)
	strand := d.strandedLinks(names, current, now)
	policyStrand := d.drains.policyStranded(strand, now)
	// Incoming links whose dialler keeps them as static (they are honoured
	// within a bound by the policy).
	claimed := map[string]bool{}
	for _, l := range current {
		if ll := n.link(l.Peer); ll != nil && !ll.Outbound() && ll.PeerFeatures()&links.FeatureStatic != 0 {
			claimed[l.Peer] = true
		}
	}
	members := sc.members
	var lost, unavailable, full, failed []string
	var slow time.Duration
	for _, l := range current {
		slow = max(slow, l.RTT)
	}
	d.mu.Lock()
	d.slowRTT = slow
	grace := d.lostGraceLocked()
	for _, name := range names {
		if reachable[name] && !d.reached[name] && !implied[name] {
			if len(d.reached) >= maxReached {
				// Forget one: it only gets less room, and, lost, holds
				// no partition (topology.Member.Vouched).
				for k := range d.reached {
					delete(d.reached, k)
					break
				}
			}
			d.reached[name] = true
		}
		mem := alive[name]
		// The coordinate of this node's own last probe of the member,
		// else the one the member's gossip metadata carries.
		coord := d.coords[mem.Name]
		if coord == nil {
			coord = d.members[name].coord
		}
		members = append(members, topology.Member{Name: mem.Name, Leaf: mem.Leaf, Addr: mem.LinkAddr, Coord: coord, RTT: d.rtts[mem.Name].rtt(),
			Vouched: d.reached[name] && !d.mutedLocked(name, now), Route: route[name]})
	}
	sc.members = members
	d.clearGrantsLocked(now, reachable, current)
	// Lost routers that only a back-off or a ban keeps from being
	// dialled, and when that ends (islandPickLocked).
	var barred map[string]time.Time
	lostRouters := 0
	d.sweepHostsLocked(now)
	for name, mem := range alive {
		isLost := false
		if reachable[name] {
			delete(d.lost, name)
		} else if since, ok := d.lost[name]; !ok {
			d.lost[name] = now
		} else if now.Sub(since) >= grace {
			lost = append(lost, name)
			isLost = !mem.Leaf && mem.LinkAddr != "" && !d.mutedLocked(name, now)
		}
		if isLost {
			lostRouters++
		}
		if b := d.backoff[mem.LinkAddr]; b != nil && mem.LinkAddr != "" {
			switch {
			case b.full:
				full = append(full, name)
			case b.fails > 0 && b.holder != name:
				failed = append(failed, name)
			}
		}
		switch {
		case d.dialing[name] || d.endingLocked(name) || len(d.dialing) >= maxDialing:
			unavailable = append(unavailable, name)
		case d.mutedLocked(name, now):
			// Its last link carried no routing, or its links died
			// young (discoverymute.go): not dialled, and no
			// link is given up for it (the policy's room passes over
			// members it may not dial), not even by an island's dial.
			unavailable = append(unavailable, name)
		case mem.LinkAddr != "" && d.hostHardBarLocked(name, mem.LinkAddr, now):
			// Not even an island's dial (islandPickLocked) goes to a
			// host that never proved a certificate past its budget.
			unavailable = append(unavailable, name)
		case !d.mayDialLocked(name, mem.LinkAddr, now) || d.memberBannedLocked(name, mem.LinkAddr, now) || mem.LinkAddr != "" && d.hostBarredLocked(name, mem.LinkAddr, now):
			unavailable = append(unavailable, name)
			if isLost {
				if barred == nil {
					barred = map[string]time.Time{}
				}
				barred[name] = d.barUntilLocked(name, mem.LinkAddr)
			}
		}
	}
	island := d.islandPickLocked(now, len(reachable), lostRouters, barred)
	if island != "" {
		unavailable = slices.DeleteFunc(unavailable, func(name string) bool { return name == island })
	}
	for name := range d.lost {
		if _, ok := alive[name]; !ok {
			delete(d.lost, name)
		}
	}
	var ls []topology.Link
	// Links this node dialled to members no longer alive nor routed. A
	// peer that said it drains left gossip as it began and closes its
	// links itself once its circuits end or its grace runs out: dropping
	// its link here cut the circuits it was letting finish
	// (TestDrainingGossipPeerKeepsItsCircuits). A peer that says it
	// drains and never closes keeps its link (routed around at the
	// highest cost) as any member could, in one of this node's slots.
	var gone []string
	for _, l := range current {
		if mem, ok := alive[l.Peer]; ok && mem.LinkAddr == l.Address {
			d.proveLocked(l.Address, l.Peer, now) // the member linked to us from its address
		}
		d.noteHostLocked(l.Address, now) // a certificate holder linked from the host
		static := d.static[l.Address] || d.static[l.Peer]
		ls = append(ls, topology.Link{Peer: l.Peer, Outbound: l.Outbound, RTT: l.RTT, Static: static,
			Age: max(now.Sub(l.Since), time.Nanosecond), Streams: l.Streams, Claimed: claimed[l.Peer],
			Alternates: alt[l.Peer], Shortcut: l.Outbound && d.why[l.Peer] == topology.WhyShortcut,
			Long: l.Outbound && d.why[l.Peer] == topology.WhyLong, Stranded: policyStrand[l.Peer],
			Replacing: d.drains.draining(l.Peer)})
		if _, ok := alive[l.Peer]; !ok && d.owned[l.Peer] && !static && !routed[l.Peer] && !l.Draining {
			gone = append(gone, l.Peer)
		}
	}
	noRoom := !d.roomAt.IsZero() && now.Sub(d.roomAt) < roomEvery
	unvouched := d.unvouchedAt.IsZero() || now.Sub(d.unvouchedAt) >= unvouchedRoomEvery
	probing := d.probingLocked(now)
	d.mu.Unlock()

	plan := topology.Decide(topology.Input{
		Self: n.cfg.Name, Leaf: n.cfg.Leaf, Coord: d.vc.GetCoordinate(),
		Members: members, Links: ls, Unreachable: lost, Unavailable: unavailable, Full: full,
		Failed: failed, NoRoom: noRoom, UnvouchedRoom: unvouched, Probing: probing,
		Config: d.policyConfig(),
	})
	d.probe(plan.Probe, now)
	for _, peer := range gone {
		d.drop(peer, whyGone, "no longer a gossip member")
	}
	d.drains.drainDrops(n.router, now, plan.Drop, strand, func(peer string) bool { return n.link(peer) != nil }, func(dr topology.Drop) {
		if dr.Why == topology.WhyRoom {
			d.mu.Lock()
			d.roomAt = now
			if unvouched {
				d.unvouchedAt = now
			}
			d.mu.Unlock()
		}
		d.drop(dr.Peer, dr.Why, dr.Reason)
	})
	for i, m := range plan.Add {
		if m.Name == island {
			d.mu.Lock()
			d.islandAt = now
			d.mu.Unlock()
			n.log.Debug("discovery dials a barred member: cut off from most members", "member", m.Name, "reason", plan.Why[i])
			d.dialBarred(Member{Name: m.Name, LinkAddr: m.Addr, Leaf: m.Leaf}, plan.Why[i])
			continue
		}
		d.dial(Member{Name: m.Name, LinkAddr: m.Addr, Leaf: m.Leaf}, plan.Why[i])
	}
	return len(members)
}

// stepScratch holds a policy step's tables of every member between
// steps: with hundreds of members, making them was most of a step's
// allocations. A pool, not tables per node: between steps they hold
// nothing, and a process simulating n nodes would keep n² entries live.
type stepScratch struct {
	alive     map[string]Member
	reachable map[string]bool
	routes    map[string]routeHop
	route     map[string]time.Duration // routeLatency's
	excess    map[string]time.Duration // routeLatency's
	names     []string
	members   []topology.Member
}

var stepScratchPool = sync.Pool{New: func() any {
	return &stepScratch{alive: map[string]Member{}, reachable: map[string]bool{}, routes: map[string]routeHop{},
		route: map[string]time.Duration{}, excess: map[string]time.Duration{}}
}}

// put empties s, so that it keeps no member alive, and returns it to the
// pool.
func (s *stepScratch) put() {
	clear(s.alive)
	clear(s.reachable)
	clear(s.routes)
	clear(s.route)
	clear(s.excess)
	clear(s.names[:cap(s.names)])
	clear(s.members[:cap(s.members)])
	s.names, s.members = s.names[:0], s.members[:0]
	stepScratchPool.Put(s)
}

// routeHop is what the policy needs of a route: its cost and first hop
// (a PeerInfo per member was a fifth of a step's allocations).
type routeHop struct {
	cost uint32
	next string
}

// routeCostUnit is the round-trip time of one unit of routing cost
// (links.Cost).
const routeCostUnit = 10 * time.Microsecond

// routeLatency turns routes into the policy's Member.Route, written into
// out and returned (excess is its own table; both are empty): the route's
// cost as round-trip time, less what the first hop's cost adds to its
// measured RTT (loss, RTT variance, a pinned cost), which this node sees;
// the hops beyond are taken at their cost. Routes without a known first
// hop are left out, and so are those of cost limit or more: they cross a
// drained link (routing.Config.DrainPenalty), and their cost says nothing
// of the route's length.
func routeLatency(out, excess map[string]time.Duration, routes map[string]routeHop, current []LinkInfo, limit uint32) map[string]time.Duration {
	for _, l := range current {
		excess[l.Peer] = max(time.Duration(l.Cost)*routeCostUnit-l.RTT, 0)
	}
	for name, p := range routes {
		ex, ok := excess[p.next]
		if !ok || p.cost >= limit {
			continue
		}
		if r := time.Duration(p.cost)*routeCostUnit - ex; r > 0 {
			out[name] = r
		}
	}
	return out
}

// policyConfig is the link policy's configuration.
func (d *discovery) policyConfig() topology.Config {
	dc := d.n.cfg.Discovery
	return topology.Config{Target: dc.TargetLinks, Max: dc.MaxLinks, Long: dc.LongLinks, Leaf: dc.LeafLinks, Seed: seedFor(d.n.cfg.Mesh),
		StaticIn: dc.StaticInLinks}
}

// slotsLocked returns the node's links as the policy sees them and the
// members holding a slot by a dial: in progress, or made and its link not
// ended nor in the node's table yet. A dial's link in the table holds its
// slot as a link: listed as pending too, it was never one to give up for
// room (topology.Room passes over peers being dialled), so a node at its
// maximum whose links it had all dialled itself refused every repair
// link (TestAdmissionMakesRoomInPlaceOfOwnDial). alt gives the routing
// alternates of the links' peers (nil: none known). d.mu is held (it
// serialises admissions and dials).
func (d *discovery) slotsLocked(now time.Time, alt map[string]int) ([]topology.Link, []string) {
	n := d.n
	n.mu.Lock()
	cur := make([]links.Link, 0, len(n.links))
	for _, l := range n.links {
		cur = append(cur, l)
	}
	n.mu.Unlock()
	ls := make([]topology.Link, 0, len(cur))
	linked := make(map[string]bool, len(cur))
	for _, l := range cur {
		pl := d.policyLinkLocked(l, now)
		pl.Alternates = alt[pl.Peer]
		ls = append(ls, pl)
		linked[pl.Peer] = true
	}
	pending := make([]string, 0, len(d.dialing)+len(d.held))
	for name := range d.dialing {
		pending = append(pending, name)
	}
	for name := range d.held {
		if !linked[name] && !d.dialing[name] {
			pending = append(pending, name)
		}
	}
	return ls, pending
}

// policyLinkLocked describes l for the policy's bound. d.mu is held.
func (d *discovery) policyLinkLocked(l links.Link, now time.Time) topology.Link {
	addr := addrString(l.RemoteAddr())
	return topology.Link{Peer: l.Peer(), Outbound: l.Outbound(), Static: d.static[addr] || d.static[l.Peer()],
		Claimed: !l.Outbound() && l.PeerFeatures()&links.FeatureStatic != 0,
		Age:     max(now.Sub(l.Established()), time.Nanosecond), RTT: l.Quality().RTT, Streams: l.OpenStreams()}
}

// alternates counts, for the peer of every current link, the other
// neighbours through which it stays reachable without its link to this
// node (see linkAlternates): closing the link would not cut the peer off.
func (d *discovery) alternates() map[string]int {
	d.mu.Lock()
	dests := make([]string, 0, len(d.members))
	for name, gm := range d.members {
		if gm.ok {
			dests = append(dests, name)
		}
	}
	d.mu.Unlock()
	return d.alternatesOf(dests)
}

// alternatesOf is alternates over the members dests (alive, as the step
// listed them).
func (d *discovery) alternatesOf(dests []string) map[string]int {
	n := d.n
	n.mu.Lock()
	peers := make([]string, 0, len(n.links))
	for peer := range n.links {
		peers = append(peers, peer)
	}
	n.mu.Unlock()
	return linkAlternates(peers, dests, n.router.detours)
}

// linkAlternates counts, for each peer (a neighbour), the other
// neighbours that reach it without this node, from detours (routing's
// Detours: the neighbours other than dest that advertise a finite route
// to dest; with poison reverse none of those routes starts at this node).
//
// A neighbour that advertises a route to the peer itself is one. So is,
// for a peer with none, a neighbour that advertises a route to a
// destination (one of dests) the peer also advertises, or that is the
// destination: the peer reaches it and it reaches that neighbour, neither
// by its first hop to this node, so the peer's link is on a cycle, not a
// bridge. The first test alone sees only triangles: in a mesh whose
// shortest cycles are longer (every node at a small maximum), each
// neighbour reaches the peer through this node and advertises it as
// unreachable, so every link looked like a bridge and no link could make
// room for a repair link after a partition healed.
func linkAlternates(peers, dests []string, detours func(dest string) []string) map[string]int {
	alt := make(map[string]int, len(peers))
	isPeer := make(map[string]bool, len(peers))
	missing := 0
	for _, p := range peers {
		isPeer[p] = true
		if alt[p] = len(detours(p)); alt[p] == 0 {
			missing++
		}
	}
	for _, x := range dests {
		if missing == 0 {
			break
		}
		via := detours(x)
		if isPeer[x] {
			via = append(via, x)
		}
		if len(via) < 2 {
			continue
		}
		for _, p := range via {
			if isPeer[p] && p != x && alt[p] == 0 {
				alt[p] = len(via) - 1
				missing--
			}
		}
	}
	return alt
}

// admit decides whether link l, just up, may join the node's links, and
// if so adds it with add, in the same critical section as the count so
// that links coming up together cannot overshoot MaxLinks. Links this
// node dialled took their slot when the dial started. A link that ended
// before its LinkUp is not admitted. At the maximum, a
// link from a gossip member routing has not reached for lostGraceLocked
// (a new member, or the other side of a partition) is admitted in place
// of a redundant idle link (topology.Room): add gets that link to remove
// first, and evicted returns it. hold is true for a link this node's
// discovery dialled: the peer may refuse it at its own maximum, so
// routing is to hear of it only once the peer routes over it
// (handler.go).
func (d *discovery) admit(l links.Link, add func(evict links.Link) bool) (ok bool, evicted links.Link, reason string, hold bool) {
	if linkEnded(l) {
		// A link that ended before its LinkUp is not admitted. The
		// transport may have replaced it already (crossing dials are
		// adopted on two goroutines), and the live link to the peer
		// would leave the table for it until its LinkDown removed the
		// peer altogether. A dial also gave its slot back when its link
		// ended (its peer refused it at its maximum, say), which may be
		// before this LinkUp: taken now, the link would count on top of
		// a link admitted into that slot meanwhile.
		return false, nil, "", false
	}
	if l.Outbound() {
		d.mu.Lock()
		defer d.mu.Unlock()
		peer := l.Peer()
		hold := d.dialing[peer] || d.held[peer] == l
		return add(nil), nil, "", hold
	}
	// Routing is asked before d.mu is taken (the router has its own lock);
	// what it says may be a moment old, which only makes room-making
	// more or less eager.
	n := d.n
	peer := l.Peer()
	var repair bool
	if p, ok := n.Peer(peer); !ok || !p.Reachable {
		d.mu.Lock()
		gm, member := d.members[peer]
		d.mu.Unlock()
		repair = member && gm.ok
	}
	var alt map[string]int
	if repair {
		alt = d.alternates()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if d.liftMuteLocked(peer, l, now) {
		n.log.Info("discovery links a barred peer again: it restarted since its mute link", "peer", peer)
	}
	if d.mutedLocked(peer, now) {
		// Its last link carried no routing, or its links died young
		// (discoverymute.go): at any degree, so that a peer whose mute
		// link was closed does not take the slot back before this
		// node's own dials.
		return false, nil, fmt.Sprintf("refused: %s is barred, its last link carried no routing or its links died young; not linked again until %s",
			peer, d.muted[peer].until.UTC().Format(time.RFC3339)), false
	}
	if repair && !d.lostLongLocked(peer, now) {
		repair = false
	}
	if repair && !d.mayMakeRoomLocked(peer, now) {
		repair = false
	}
	ls, pending := d.slotsLocked(now, alt)
	cand := d.policyLinkLocked(l, now)
	cand.Repair = repair
	a := topology.Admit(d.policyConfig(), ls, pending, cand)
	if !a.OK {
		return false, nil, a.Reason, false
	}
	if a.Evict != "" {
		evicted = n.link(a.Evict)
		d.roomAt = now
		d.granted[peer] = now
	}
	return add(evicted), evicted, "", false
}

// linkEnded reports whether l is down.
func linkEnded(l links.Link) bool {
	select {
	case <-l.Done():
		return true
	default:
		return false
	}
}

// lostLongLocked reports whether the policy found member unreachable by
// routing at least lostGraceLocked ago (and at every step since): only
// such a member is one to make room for at admission. A member routing
// does not reach just now (a link on its route changed, and routing has
// not brought the route around it yet, which on a starved node takes
// seconds) is not. d.mu is held.
func (d *discovery) lostLongLocked(member string, now time.Time) bool {
	since, ok := d.lost[member]
	return ok && now.Sub(since) >= d.lostGraceLocked()
}

// mayMakeRoomLocked reports whether an incoming link from peer, a member
// routing does not reach, may take the place of another link now: not
// within roomEvery of the last link given up for room, and not within
// roomBackoff of the last time peer got room (a certified peer that never
// lets routing reach it, or drops its link at once, would otherwise evict
// a link on every reconnect). The grant table is bounded: when it is full
// of running back-offs, no room is made. d.mu is held.
func (d *discovery) mayMakeRoomLocked(peer string, now time.Time) bool {
	if d.mutedLocked(peer, now) {
		return false
	}
	if !d.roomAt.IsZero() && now.Sub(d.roomAt) < roomEvery {
		return false
	}
	if at, ok := d.granted[peer]; ok {
		if now.Sub(at) < roomBackoff {
			return false
		}
		delete(d.granted, peer)
	}
	if len(d.granted) >= maxGranted {
		for p, at := range d.granted {
			if now.Sub(at) >= roomBackoff {
				delete(d.granted, p)
			}
		}
	}
	return len(d.granted) < maxGranted
}

// clearGrantsLocked ends the room back-off of peers routing reaches over
// a link that has lived goodLink (they were what room is for: a member on
// the other side of a partition), and of those whose back-off ran out.
// d.mu is held.
func (d *discovery) clearGrantsLocked(now time.Time, reachable map[string]bool, current []LinkInfo) {
	if len(d.granted) == 0 {
		return
	}
	for _, l := range current {
		if _, ok := d.granted[l.Peer]; ok && reachable[l.Peer] && now.Sub(l.Since) >= goodLink {
			delete(d.granted, l.Peer)
		}
	}
	for p, at := range d.granted {
		if now.Sub(at) >= roomBackoff {
			delete(d.granted, p)
		}
	}
}

func (d *discovery) drop(peer string, why topology.Why, reason string) {
	if l := d.n.link(peer); l != nil {
		d.dropLink(l, why, reason)
	}
}

// dropLink closes l, if it is still its peer's link: a link that
// replaced it is not closed.
func (d *discovery) dropLink(l links.Link, why topology.Why, reason string) {
	if d.n.link(l.Peer()) != l {
		return
	}
	d.n.log.Debug("discovery closes a link", "peer", l.Peer(), "reason", reason)
	d.stats.dropped.WithLabelValues(string(why)).Inc()
	l.Close("discovery: " + reason)
}

// mayDialLocked reports whether member's address addr is out of
// back-off. d.mu is held.
func (d *discovery) mayDialLocked(member, addr string, now time.Time) bool {
	b := d.backoff[addr]
	if b == nil {
		return len(d.backoff) < maxBackoffs || d.evictLocked(now)
	}
	return !now.Before(d.banEndLocked(b, member, addr))
}

// signedAddrLocked reports whether member's verified signed gossip
// metadata names addr as its link address, in a mesh with a CA (vouch).
// d.mu is held.
func (d *discovery) signedAddrLocked(member, addr string) bool {
	gm, ok := d.members[member]
	return d.vouch && ok && gm.ok && gm.verified && gm.LinkAddr == addr
}

// banEndLocked is when b (addr's back-off, or member's ban of unproven
// addresses) stops barring dials of member at addr: b.signed when
// member's verified signed metadata names addr, else b.until. It is read
// at each dial, so a member whose metadata is verified only after its
// dials failed (a new router whose certificate this node learns once it
// links to any node) is dialled again after signedBan. A back-off that
// only other members' claims of the address earned (holder) does not bar
// the node whose certificate a dial there proved, nor, once that node's
// verified signed metadata names another address (holderMovedLocked), any
// member. d.mu is held.
func (d *discovery) banEndLocked(b *addrBackoff, member, addr string) time.Time {
	moved := b.claimHolder != "" && d.holderMovedLocked(b.claimHolder, addr)
	var end time.Time
	switch {
	case b.holder != "" && (b.holder == member || moved):
	case d.signedAddrLocked(member, addr):
		end = b.signed
	default:
		end = b.until
	}
	if member != b.claimHolder && !moved && b.claimed.After(end) {
		end = b.claimed // another member's claim of the holder's address
	}
	return end
}

// holderMovedLocked reports whether holder, the node whose certificate a
// dial at addr proved for another member's claim, announces another link
// address now in verified signed gossip metadata (in a mesh with a CA):
// the bar on claims of addr protected it there, and would otherwise bar
// for banTime whichever node takes the address next (a restart on another
// node's former port, a pod's reused address) at every node that dialled
// a made-up claim of it. d.mu is held.
func (d *discovery) holderMovedLocked(holder, addr string) bool {
	gm, ok := d.members[holder]
	return d.vouch && ok && gm.ok && gm.verified && gm.LinkAddr != "" && gm.LinkAddr != addr
}

// evictLocked frees a back-off entry whose wait ended; false when every
// entry is still waiting (then no new address is dialled). d.mu is held.
func (d *discovery) evictLocked(now time.Time) bool {
	return evictExpired(d.backoff, now)
}

// evictExpired deletes one entry of m whose wait ended; false when none
// has.
func evictExpired(m map[string]*addrBackoff, now time.Time) bool {
	for k, b := range m {
		if !now.Before(b.until) && !now.Before(b.claimed) {
			delete(m, k)
			return true
		}
	}
	return false
}

// failedUnprovenLocked counts a failed dial to member at an address that
// never proved its certificate. After unprovenDials of them, at whatever
// addresses, the member is not dialled for unprovenBan: the bound per
// address alone let a member without a certificate announce a new
// address (a victim's) after every two dials. d.mu is held.
func (d *discovery) failedUnprovenLocked(member string, now time.Time) {
	b := d.unproven[member]
	if b == nil {
		if len(d.unproven) >= maxBackoffs && !evictExpired(d.unproven, now) {
			return
		}
		b = &addrBackoff{}
		d.unproven[member] = b
	}
	if !b.until.IsZero() && !now.Before(b.until) {
		b.fails, b.until, b.signed = 0, time.Time{}, time.Time{} // the ban ran out: count afresh
	}
	if b.fails++; b.fails >= unprovenDials {
		b.until, b.signed = now.Add(unprovenBan), now.Add(signedBan(b.fails))
	}
}

// memberBannedLocked reports whether member is not dialled at addr for
// its failed dials to unproven addresses. An address where a handshake
// proved the member stays dialled: a forger who names silent addresses
// for an honest member bans only those. The ban is signedBan at an
// address the member's verified signed metadata names (banEndLocked).
// The member's strikes (strikeLocked), which a link proving it does not
// end, bar it at every address that never proved it. d.mu is held.
func (d *discovery) memberBannedLocked(member, addr string, now time.Time) bool {
	if d.proven[addr] == member {
		return false
	}
	if now.Before(d.strikeBanLocked(member, now)) {
		return true
	}
	b := d.unproven[member]
	return b != nil && now.Before(d.banEndLocked(b, member, addr))
}

// dialFailedSignedLocked backs off from m's address after a dial to it failed
// with err. An address that answered (dialAnswered) is no silent
// address: it backs off without the ban of unproven addresses. d.mu is
// held. signed says that m's verified signed metadata named m.LinkAddr
// when the dial began: a member that names another address while the
// dial runs still earns its strike (strikeLocked).
func (d *discovery) dialFailedSignedLocked(m Member, err error, signed bool, now time.Time) {
	answered := dialAnswered(err)
	if !answered && d.proven[m.LinkAddr] != m.Name {
		d.failedUnprovenLocked(m.Name, now)
		d.strikeLocked(m.Name, m.LinkAddr, signed, now)
	}
	d.backoffLocked(m.LinkAddr, 0, answered)
}

// dialAnswered reports whether a failed dial's address answered: it did
// not complete the handshake in time (links.ErrHandshakeSlow: a
// CPU-starved node at either end), or refused it as busy
// (links.ErrBusy: its handshake budget spent, by a stranger's flood as
// well). Two busy refusals counted as silence banned an honest member's
// address for an hour.
func dialAnswered(err error) bool {
	return errors.Is(err, links.ErrHandshakeSlow) || errors.Is(err, links.ErrBusy)
}

// failedLocked backs addr off: doubling from dialMinBackoff, or at least
// ban; an address that never proved its member's certificate waits
// unprovenBan (signedBan for a member whose verified signed metadata
// names it) after unprovenDials failures. d.mu is held.
func (d *discovery) failedLocked(addr string, ban time.Duration) {
	d.backoffLocked(addr, ban, false)
}

// claimFailedSignedLocked penalises m's claim of its link address after a dial
// there proved holder's certificate instead: the address is not dialled
// for banTime for any member but holder, and the dial counts as a failed
// dial of m at an address that never proved it (failedUnprovenLocked), so
// that m is banned at any address after unprovenDials of them (for
// signedBan when m's verified signed metadata names the address, which
// makes it also a strike that a link proving m does not end:
// strikeLocked). The holder, whose handshake just succeeded, is dialled
// there as before and is not listed as failed: anyone with the gossip key
// can claim an honest node's live address under a made-up name, and
// before, one such message kept every node that dialled the claim from
// dialling the holder for banTime. signed is as in
// dialFailedSignedLocked. d.mu is held.
func (d *discovery) claimFailedSignedLocked(m Member, holder string, signed bool, now time.Time) {
	d.proveLocked(m.LinkAddr, holder, now)
	d.failedUnprovenLocked(m.Name, now)
	d.strikeLocked(m.Name, m.LinkAddr, signed, now)
	d.backoffLocked(m.LinkAddr, banTime, false)
	if b := d.backoff[m.LinkAddr]; b != nil {
		b.holder = holder
		b.claimHolder, b.claimed = holder, now.Add(banTime)
	}
}

// backoffLocked is failedLocked, where answered exempts addr from the ban
// of unproven addresses: its last dial timed out after it answered
// (links.ErrHandshakeSlow). d.mu is held.
func (d *discovery) backoffLocked(addr string, ban time.Duration, answered bool) {
	b := d.backoff[addr]
	if b == nil {
		if len(d.backoff) >= maxBackoffs && !d.evictLocked(time.Now()) {
			return
		}
		b = &addrBackoff{}
		d.backoff[addr] = b
	}
	b.fails++
	b.holder = "" // a failed dial: the back-off bars every member here
	b.wait = min(max(2*b.wait, dialMinBackoff), dialMaxBackoff)
	wait := max(b.wait/2+rand.N(b.wait/2+1), ban)
	now := time.Now()
	b.until, b.signed = now.Add(wait), now.Add(wait)
	if _, ok := d.proven[addr]; !ok && !answered && b.fails >= unprovenDials {
		b.until, b.signed = now.Add(max(wait, unprovenBan)), now.Add(max(wait, signedBan(b.fails)))
	}
}

// refusedFullLocked backs addr off after its member refused a link at its
// maximum (fullBan at least, doubling with each refusal before it, up to
// fullBanDoublings times, until a link dialled there lives goodLink) and
// marks it full until a link dialled there comes up. A link that comes
// up and is refused (a refusal after the dialler had the link up) does
// not end the doubling: on a starved mesh, nodes dialled peers at their
// maximum every 15 s, each dial a handshake and a refusal. d.mu is held.
func (d *discovery) refusedFullLocked(addr string) {
	ban := fullBan
	if b := d.backoff[addr]; b != nil {
		ban = fullBan << min(b.refused, fullBanDoublings)
	}
	d.backoffLocked(addr, ban, true)
	if b := d.backoff[addr]; b != nil {
		b.full = true
		b.refused++
	}
}

// proveLocked records that a handshake at addr proved member's
// certificate, forgets the member's failed dials to addresses that never
// proved it, and takes back the strikes addr earned it; its strikes at
// other addresses stay (discoverystrike.go). d.mu is held.
func (d *discovery) proveLocked(addr, member string, now time.Time) {
	delete(d.unproven, member)
	d.unstrikeLocked(member, addr)
	if d.proven[addr] == member {
		d.noteHostLocked(addr, now)
		return
	}
	d.provenHostLocked(addr, member, now)
	d.noteHostLocked(addr, now)
	if len(d.proven) >= maxProven {
		for a := range d.proven { // forget one: it only gets fewer dials
			delete(d.proven, a)
			break
		}
	}
	d.proven[addr] = member
}

// dial links to member m, keeping the link only if its certificate names
// m. The link's life then decides the address's back-off; why is the
// policy's reason, counted once the link is proven.
func (d *discovery) dial(m Member, why topology.Why) { d.dialMember(m, why, false) }

// dialBarred is dial of a member whose ban of unproven addresses this
// node overrides (islandPickLocked).
func (d *discovery) dialBarred(m Member, why topology.Why) { d.dialMember(m, why, true) }

// endingLocked reports whether the link this node dialled to name ended
// and its dial has not yet noted what the end means (back-off, links that
// died young): name is not dialled until it has, which kicks the policy.
// Before, a step at the instant the link ended dialled the member again
// past the bar its end was about to set. d.mu is held.
func (d *discovery) endingLocked(name string) bool {
	l := d.held[name]
	return l != nil && linkEnded(l)
}

func (d *discovery) dialMember(m Member, why topology.Why, barred bool) {
	n := d.n
	d.mu.Lock()
	now := time.Now()
	if d.dialing[m.Name] || d.endingLocked(m.Name) || !barred && d.memberBannedLocked(m.Name, m.LinkAddr, now) {
		d.mu.Unlock()
		return
	}
	// The step lists members as unavailable only while maxDialing dials
	// run at its start, and may then add several: the bound holds here.
	if len(d.dialing) >= maxDialing {
		d.mu.Unlock()
		n.log.Debug("discovery dial deferred: dials in flight at their bound", "member", m.Name, "dialing", maxDialing)
		return
	}
	// The host budget holds for a barred member too, unless its host
	// proved a certificate (islandPickLocked).
	if hb, hard := d.hostBarLocked(m.Name, m.LinkAddr, now); hb && (!barred || hard) {
		d.mu.Unlock()
		return
	}
	// A dial holds a slot from its start: dials may not outnumber the
	// free slots.
	if ls, pending := d.slotsLocked(time.Now(), nil); topology.Slots(d.policyConfig(), ls, pending) == 0 && d.held[m.Name] == nil && n.link(m.Name) == nil {
		d.mu.Unlock()
		n.log.Debug("discovery dial deferred: no free link slot", "member", m.Name)
		return
	}
	counted, ok := d.hostDialLocked(m.Name, m.LinkAddr, now)
	if !ok {
		d.mu.Unlock()
		n.log.Debug("discovery dial deferred: host table full", "member", m.Name)
		return
	}
	signed := d.signedAddrLocked(m.Name, m.LinkAddr) // the member's own claim, for its strikes
	d.dialing[m.Name] = true
	d.mu.Unlock()
	n.log.Debug("discovery dials", "member", m.Name, "reason", why)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer d.kick()
		before := map[string]bool{}
		for _, li := range n.Links() {
			before[li.Peer] = true
		}
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.DialTimeout)
		l, err := n.transport.Dial(ctx, m.LinkAddr)
		cancel()
		// The back-off is updated in the same critical section that ends
		// the dial, so that the policy cannot dial the address again in
		// between.
		d.mu.Lock()
		delete(d.dialing, m.Name)
		full := err != nil && refusedAtMaximum(err)
		if counted {
			// Only a dial nothing answered counts against its host: a
			// refusal at the maximum, a slow handshake, a busy refusal
			// and another node's certificate are answers.
			silent := err != nil && !full && !dialAnswered(err) && n.ctx.Err() == nil
			d.hostDoneLocked(m.LinkAddr, silent, time.Now())
		}
		switch {
		case full && n.ctx.Err() == nil:
			// The member refused the link at its maximum before this
			// node's transport had it up: the address answered, like a
			// refusal after the link came up.
			d.refusedFullLocked(m.LinkAddr)
		case err != nil && n.ctx.Err() == nil:
			d.dialFailedSignedLocked(m, err, signed, time.Now())
		case err == nil && l.Peer() != m.Name:
			d.claimFailedSignedLocked(m, l.Peer(), signed, time.Now())
		case err == nil:
			d.owned[m.Name] = true
			d.why[m.Name] = why
			d.held[m.Name] = l // the link may reach the node's table later
		}
		d.mu.Unlock()
		switch {
		case err != nil:
			switch {
			case n.ctx.Err() != nil:
			case full:
				d.warnFull(m, err)
			default:
				n.log.Debug("discovery dial failed", "member", m.Name, "addr", m.LinkAddr, "err", err)
			}
			return
		case l.Peer() != m.Name:
			n.log.Warn("gossip member's link address proved another identity; not linking to it",
				"member", m.Name, "addr", m.LinkAddr, "certificate", l.Peer(), "retry_after", banTime)
			n.metrics.linkRefused.Inc()
			if !before[l.Peer()] {
				l.Close("identity does not match the gossip member")
			}
			return
		}
		if !before[m.Name] {
			d.stats.added.WithLabelValues(string(why)).Inc()
		}
		d.mu.Lock()
		d.proveLocked(m.LinkAddr, m.Name, time.Now())
		if b := d.backoff[m.LinkAddr]; b != nil {
			// A member whose last links died young (diedYoungLocked)
			// stays listed as failed while this one may die young too.
			if d.youngLocked(m.Name) == 0 {
				b.fails = 0
			}
			b.full = false
		}
		d.mu.Unlock()
		up := time.Now()
		for {
			select {
			case <-l.Done():
			case <-n.ctx.Done():
				return
			}
			// A link the member dialled at the same moment may have
			// replaced this one as its duplicate: the dial's link lives
			// on as that one, and its end is that one's.
			r := d.replacement(l, time.Since(up) < goodLink)
			if r == nil {
				break
			}
			d.mu.Lock()
			if d.held[m.Name] == l {
				d.held[m.Name] = r
			}
			d.mu.Unlock()
			l = r
		}
		d.mu.Lock()
		if d.held[m.Name] == l {
			delete(d.held, m.Name)
		}
		if d.owned[m.Name] && n.link(m.Name) == nil {
			delete(d.owned, m.Name)
			delete(d.why, m.Name)
		}
		// A link that lived goodLink ends its address's back-off, unless
		// a bar on other members' claims of the address still runs
		// (holder's exemption from until, claimed): the entry, its
		// back-off included, then stays until that bar ends.
		now := time.Now()
		lived := now.Sub(up)
		if b := d.backoff[m.LinkAddr]; b != nil && lived >= goodLink && (b.holder == "" || !now.Before(b.until)) && !now.Before(b.claimed) {
			delete(d.backoff, m.LinkAddr)
		}
		// The back-off is updated in the critical section that lets the
		// member go (held, owned): before, a policy step between the two
		// dialled it again at once, past the back-off of its last dial.
		lerr := l.Err()
		refused := lerr != nil && refusedAtMaximum(lerr)
		var ban time.Duration
		switch {
		case refused:
			d.refusedFullLocked(m.LinkAddr) // backed off before the warning that says so
		case lived >= goodLink:
			d.livedLocked(m.Name)
		default:
			d.failedLocked(m.LinkAddr, 0)
			if n.ctx.Err() == nil && !errors.Is(lerr, links.ErrClosed) {
				ban = d.diedYoungLocked(m.Name, peerInstance(l), now)
			}
		}
		d.mu.Unlock()
		switch {
		case refused:
			d.warnFull(m, lerr)
		case ban > 0:
			n.log.Warn("discovery bars a member whose links die young", "member", m.Name, "links", youngLinks, "lived_under", goodLink, "barred_for", ban)
		}
	}()
}

// dupWait bounds how long replacement waits for the link that replaced a
// young link as its duplicate.
const dupWait = time.Second

// replacement returns the live link to l's peer, from the same instance
// of it (links.QUICTransport's PeerInstance), that replaced l, which
// ended: two nodes dialled each other at once, and the transport kept
// the link the smaller name dialled, closing the other as its duplicate.
// That is no end of the dial's link to the peer, which lives on as the
// replacement. When the peer closed l as a duplicate, the replacement may
// come up a moment after l ended: with wait, replacement looks for it
// for up to dupWait (the member is not dialled meanwhile: endingLocked).
// nil when there is none, or the transport does not tell instances.
func (d *discovery) replacement(l links.Link, wait bool) links.Link {
	inst, err := peerInstance(l), l.Err()
	if inst == 0 || d.n.ctx.Err() != nil || err != nil && refusedAtMaximum(err) || errors.Is(err, links.ErrClosed) {
		return nil
	}
	find := func() links.Link {
		r := d.n.link(l.Peer())
		if r == nil || r == l || linkEnded(r) || peerInstance(r) != inst {
			return nil
		}
		return r
	}
	if r := find(); r != nil || !wait {
		return r
	}
	tick := time.NewTicker(dupWait / 50)
	defer tick.Stop()
	deadline := time.NewTimer(dupWait)
	defer deadline.Stop()
	for {
		select {
		case <-d.n.ctx.Done():
			return nil
		case <-deadline.C:
			return find()
		case <-tick.C:
		}
		if r := find(); r != nil {
			return r
		}
	}
}

// refusedAtMaximum reports whether err, a dial's or a link's end, is the
// peer refusing the link at its link maximum. The refusal reaches the
// dialler as the link's end when its link was up first, and as the dial's
// error when the peer closed the link before the dialler's transport had
// it up.
func refusedAtMaximum(err error) bool {
	return strings.Contains(err.Error(), topology.AtMaximum)
}

// warnFull says, at most once a minute per member, that member m refused
// a link at its maximum with err and when it is dialled again.
func (d *discovery) warnFull(m Member, err error) {
	retry := fullBan
	d.mu.Lock()
	if b := d.backoff[m.LinkAddr]; b != nil {
		retry = time.Until(b.until).Round(time.Second)
	}
	d.mu.Unlock()
	d.full.Warn("full:"+m.Name, "gossip member refused the link: at its link maximum; linking to others",
		"member", m.Name, "addr", m.LinkAddr, "err", err, "retry_after", retry)
}

// Members lists the nodes gossip knows (nil without discovery), sorted by
// name.
func (n *Node) Members() []Member {
	d := n.discoNow()
	if d == nil {
		return nil
	}
	out := []Member{{Name: n.cfg.Name, LinkAddr: d.linkAddr(), Leaf: n.cfg.Leaf}}
	d.mu.Lock()
	for _, m := range d.members {
		if m.Name != n.cfg.Name {
			out = append(out, m.Member)
		}
	}
	d.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// republish announces this node's gossip metadata again (NodeMeta signs
// it with the node's current key), waiting at most a second for its
// broadcast.
func (d *discovery) republish() {
	if err := d.ml.UpdateNode(time.Second); err != nil {
		d.n.log.Debug("gossip metadata update", "err", err)
	}
}

func (d *discovery) leave(timeout time.Duration) {
	if timeout > time.Second {
		timeout = time.Second
	}
	d.ml.Leave(timeout)
}

func (d *discovery) shutdown() {
	d.ml.Shutdown()
	// Memberlist's goroutines may log a little after Shutdown returns.
	d.logw.closed.Store(true)
}

// slogWriter adapts memberlist's log.Logger output to slog at debug level
// (warnings and errors at their level).
type slogWriter struct {
	l      *slog.Logger
	warns  *ratelog.Log // memberlist's WARN and ERROR lines, by kind (warnKind, errKind)
	closed atomic.Bool
}

// Bounds of memberlist's WARN and ERROR lines: one a kind a minute, and
// gossipLinesMax of all kinds together (a kind of three words may hold a
// name a peer chose).
const gossipLinesMax = 64

func newGossipLineLog(l *slog.Logger) *ratelog.Log {
	return ratelog.New(l, time.Minute, gossipLinesMax).
		Total(gossipLinesMax, "gossip log lines held back: more than 64 a minute")
}

// warnKind is what a memberlist line says before its first name, address
// or number, at most its first two words after "memberlist:" (some lines
// name a node unquoted after two words: "Rejected node NAME"): one gossip
// packet can repeat a refused alive message a thousand times, and each
// refusal was a WARN line; made-up names must not make new kinds.
func warnKind(msg string) string { return lineKind(msg, 2) }

// errKind is warnKind for memberlist's ERROR lines, of at most three
// words: many begin "Failed to", and a stranger's "Failed to decode"
// must not hide a "Failed to send" for a minute.
func errKind(msg string) string { return lineKind(msg, 3) }

func lineKind(msg string, n int) string {
	if i := strings.IndexAny(msg, "'\"0123456789"); i >= 0 {
		msg = msg[:i]
	}
	head, rest, ok := strings.Cut(msg, "memberlist: ")
	if !ok {
		head, rest = "", msg
	}
	words := strings.Fields(rest)
	return head + strings.Join(words[:min(n, len(words))], " ")
}

func (w *slogWriter) Write(p []byte) (int, error) {
	if w.closed.Load() {
		return len(p), nil
	}
	msg := string(bytes.TrimSpace(p))
	switch {
	case bytes.Contains(p, []byte("[ERR]")):
		// Rate-limited as the warnings are: anyone who reaches the
		// gossip port can make memberlist log an error per datagram or
		// connection (one that does not decrypt, a bad label, a
		// stream of an unknown type).
		w.warns.At(slog.LevelError, errKind(msg), msg)
	case bytes.Contains(p, []byte("[WARN]")):
		w.warns.Warn(warnKind(msg), msg)
	default:
		w.l.Debug(msg)
	}
	return len(p), nil
}

var _ io.Writer = (*slogWriter)(nil)
