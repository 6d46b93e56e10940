// Package topology decides which links a node keeps to the members gossip
// announces. Plan is a pure function of the members, their network
// coordinates, the node's current links and what routing reaches: no
// goroutines, no I/O, no clock. The caller (package node's discovery)
// dials what Plan adds, closes what it drops, and calls it again on every
// membership, link or route change and periodically.
//
// The rules, for a router:
//   - Degree is every non-static link, incoming or outgoing. Static links
//     are kept on top and never counted or dropped. An incoming link whose
//     dialler keeps it as static (Link.Claimed) counts as static too, for
//     at most StaticIn such links, the oldest first: the claim is free, so
//     it is bounded; beyond it such a link counts like any other.
//   - Wanted neighbours are the Target−Long nearest routers (measured link
//     RTT, else the Vivaldi estimate) plus Long "long links": routers
//     ranked by a hash of (seed, self, name), a stable random choice that
//     keeps the diameter logarithmic (small world). A link this node
//     dialled as a long link (Link.Long) stays one while its peer is a
//     router outside the near set, before the hash's first: the near set
//     shifting does not move it. A router that refused this node's link
//     at its maximum (Input.Full), or whose dial failed (Input.Failed:
//     unreachable, down), is passed over for the next in hash order, up
//     to LongTries routers deep; while a later one is the long link, the
//     passed ones ranked before it are dialled again as the caller's
//     back-off allows, and one that admits the link becomes the
//     long link once its link is MinAge old (a link just up may still be
//     refused). The later one is then an unwanted link like any other: at
//     Target+1 the long link's swap below drops it if it is the least
//     useful local link, above that a closer neighbour may replace it.
//   - Below Target, add wanted neighbours first, then the nearest others.
//   - Bootstrapping: a router that knows the distance (link RTT, probe
//     RTT or coordinate) to fewer than 2×Target routers asks for the
//     round trip of routers none was measured to (Plan.Probe, up to
//     BootstrapProbes, the nearest by estimate first, then by the seeded
//     hash), and below Target it adds, beyond its first link, only routers
//     whose round trip was measured (link RTT or probe RTT: a coordinate
//     is the member's own report, which a liar can put next to this
//     node's) until Input.Probing lists BootstrapAsk members: a node that
//     has just joined knows no coordinate yet, and links picked at random
//     (two of three in another region, in three regions) stay until
//     replaced. This node's own coordinate ranks no link while its error
//     estimate is above TrustError: a new coordinate is at the origin,
//     and a member gossiping one there would otherwise be the nearest by
//     estimate to every node joining a settled mesh (where every
//     member's coordinate is known, so such a node was not bootstrapping
//     and linked by estimate at once). Bootstrapping, the probes do not
//     follow it either (the hold links the routers measured); beyond,
//     it orders the probes within the near radius.
//   - At or above Target, add a wanted near neighbour only when it is
//     clearly better than a current outgoing link that is not wanted
//     (Replace times closer plus Slack) and at least MinAge old (plus up
//     to ReplaceSpread, a stable per-link part of it); that link is dropped once
//     the better one is up and no route of this node depends on the old
//     one alone (Link.Stranded is 0: make before break). A link the
//     caller drains for such a replacement (Link.Replacing) is the one
//     replaced while it may be. Incoming links are never dropped for being
//     unwanted, so two nodes that disagree do not fight.
//   - At or above Target with the long link missing (its router could not
//     be dialled while the node filled up, or its link was lost), add it
//     in place of the least useful unwanted outgoing link that may be
//     replaced (swapVictims); once it is up, a node at Target+1 drops
//     that link if it was up MinAge before the long link (as a link the
//     long link was dialled to replace is) and the long link is under
//     MinAge + ReplaceSpread old (make before break, one link per long
//     link). At Target with such a link still too young, wait for it;
//     with none, or above Target, add the long link beside the others
//     while below Max, also into the last slot below it: the long link
//     is one of the Target wanted ones, a repair link is still admitted
//     at Max in place of a redundant idle link (Room), and the links that
//     keep a node from replacing one (incoming, static, bridges, routes
//     depending on them alone) may stay for good.
//   - Shortcuts: a router at or above Target and below Max−1 links, from
//     which routing reaches every router member, links to the nearby
//     member (within Replace times its farthest near neighbour's distance
//     plus Slack) whose route (Member.Route, its latency part) is the
//     longest against the member's round trip measured by gossip's probes
//     (Member.RTT, floored at the node's nearest link's RTT), when the
//     route is at least Stretch times that and Gain more: one per call. No
//     closer neighbour replaces a shortcut link while it stays nearby. The
//     distance is measured, not the member's self-reported coordinate, so
//     a faked coordinate attracts no shortcut.
//   - Members that gossip shows but routing cannot reach get a link to the
//     nearest of them (one per call) while degree is below Max; at Max
//     the node first gives up a redundant idle link (Room) to make room,
//     for a member routing reached once (Member.Vouched), or, while
//     Input.UnvouchedRoom allows it, when at least two others are lost.
//   - Above Max, the least useful links are dropped: idle, unwanted,
//     incoming and young ones first, repair links last. The hard bound
//     itself is kept at admission (Admit, Slots): a link beyond Max is
//     refused as it comes up, unless it is a repair link and a redundant
//     idle link can make room for it (Room), and dials do not outnumber
//     free slots, so these drops only follow links made outside the
//     policy or a lowered Max.
//
// A leaf links to its Leaf nearest routers, never to another leaf and never
// beyond Max.
package topology

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/serf/coordinate"

	"github.com/circuitmesh/circuitmesh/internal/splitmix"
)

// Defaults of Config.
const (
	// DefaultTarget is 7: 6 near links and a long one. Inside a region of
	// 333 nodes, each a disc 20 ms across, linking every node to its 6
	// nearest gives a path stretch of 1.49 there, 4 (Target 5) 1.85
	// (TestKNearestStretch, package simulate); docs/SIMULATE.md, "The
	// default degree", has the runs at 100 and 300 nodes.
	DefaultTarget  = 7
	DefaultMax     = 10
	DefaultLong    = 1
	DefaultLeaf    = 2
	DefaultReplace = 2.0
	DefaultSlack   = 2 * time.Millisecond
	DefaultAdds    = 2
	DefaultMinAge  = 10 * time.Second
	// ReplaceSpread is how much longer than MinAge a link may wait to be
	// replaced: each link a stable part of it (Decide).
	ReplaceSpread = 15 * time.Second
	DefaultStatic = 4
	// Shortcuts (Config.Stretch, Gain).
	DefaultStretch = 1.6
	DefaultGain    = time.Millisecond
	// MinRTT is the floor of a member's distance for a shortcut.
	MinRTT = 100 * time.Microsecond
	// DefaultProbes is how many members Plan.Probe lists at most.
	DefaultProbes = 2
	// LongTries is how many routers, in the seeded hash's order outside
	// the near set, a node tries for a long link: it passes over those
	// that refused its link at their maximum (Input.Full) or whose dial
	// failed (Input.Failed), at most LongTries−1 of them, and dials them
	// again as its back-off from them allows. When all refuse or fail, it
	// holds no long link until one admits it.
	LongTries = 3
	// BootstrapProbes is how many members Plan.Probe lists at most for
	// a router that knows the distance to few routers (bootstrapping).
	BootstrapProbes = 4
	// BootstrapAsk is how many round trips a bootstrapping router asks
	// for (Input.Probing) before it adds links of unknown distance
	// beyond its first.
	BootstrapAsk = 16
	// TrustError is the largest error estimate (Input.Coord.Error) of
	// this node's own coordinate for which coordinate estimates rank
	// members for links. A new coordinate is at the origin with the
	// largest error (1.5); a node joining a settled mesh knows every
	// member's coordinate, and a member that gossips one at the origin
	// would be nearest to every such node by estimate, whatever its
	// round trip. Above it only measured round trips rank members for
	// links, so such a node bootstraps (the hold) as one that knows no
	// coordinate; once it is not bootstrapping the estimates still order
	// Plan.Probe.
	TrustError = 0.5
)

// Config tunes the policy. The zero value means the defaults.
type Config struct {
	// Target is the degree a router aims for. Default DefaultTarget.
	Target int
	// Max is the hard bound on degree (incoming plus outgoing, static
	// links excluded). Default the larger of DefaultMax and 2×Target.
	Max int
	// Long is how many of the Target neighbours are random long links.
	// Default DefaultLong; negative means none.
	Long int
	// Leaf is how many routers a leaf links to. Default DefaultLeaf.
	Leaf int
	// Replace and Slack are the hysteresis: a new neighbour replaces a
	// current one only when its distance d satisfies
	// Replace×d + Slack < current distance. Defaults DefaultReplace and
	// DefaultSlack.
	Replace float64
	Slack   time.Duration
	// MinAge is the age a link must reach before a closer neighbour may
	// replace it, so that a link is not closed while coordinates are
	// still settling; each link waits up to ReplaceSpread more, by a
	// seeded hash of its peer. Default DefaultMinAge; negative means none.
	MinAge time.Duration
	// Adds bounds the links added per call. Default DefaultAdds.
	Adds int
	// Seed makes the long-link choice differ between meshes.
	Seed int64
	// StaticIn is how many incoming links claimed static by their
	// dialler are kept on top of Max, the oldest first. Default
	// DefaultStatic; negative means none.
	StaticIn int
	// Stretch and Gain decide shortcuts: a nearby member whose route
	// (Member.Route) is at least Stretch times its measured round trip
	// (Member.RTT) and Gain more gets a direct link. Defaults
	// DefaultStretch and DefaultGain; a Stretch below 1 (other than 0)
	// means no shortcuts.
	Stretch float64
	Gain    time.Duration
	// Probes bounds the members Plan.Probe lists. Default DefaultProbes;
	// negative means none.
	Probes int
}

func (c Config) withDefaults() Config {
	if c.Target <= 0 {
		c.Target = DefaultTarget
	}
	if c.Max <= 0 {
		c.Max = max(DefaultMax, 2*c.Target)
	}
	if c.Max < c.Target {
		c.Max = c.Target
	}
	switch {
	case c.Long == 0:
		c.Long = DefaultLong
	case c.Long < 0:
		c.Long = 0
	}
	if c.Long >= c.Target {
		c.Long = c.Target - 1
	}
	if c.Leaf <= 0 {
		c.Leaf = DefaultLeaf
	}
	if c.Replace < 1 {
		c.Replace = DefaultReplace
	}
	if c.Slack <= 0 {
		c.Slack = DefaultSlack
	}
	if c.Adds <= 0 {
		c.Adds = DefaultAdds
	}
	switch {
	case c.MinAge == 0:
		c.MinAge = DefaultMinAge
	case c.MinAge < 0:
		c.MinAge = 0
	}
	switch {
	case c.StaticIn == 0:
		c.StaticIn = DefaultStatic
	case c.StaticIn < 0:
		c.StaticIn = 0
	}
	switch {
	case c.Stretch == 0:
		c.Stretch = DefaultStretch
	case c.Stretch < 1:
		c.Stretch = 0 // none
	}
	if c.Gain <= 0 {
		c.Gain = DefaultGain
	}
	switch {
	case c.Probes == 0:
		c.Probes = DefaultProbes
	case c.Probes < 0:
		c.Probes = 0
	}
	return c
}

// Member is a node that gossip reports alive.
type Member struct {
	Name  string
	Leaf  bool
	Addr  string                 // link address
	Coord *coordinate.Coordinate // nil when not known yet
	// Vouched: routing reached the member once. Only for such a member,
	// or while Input.UnvouchedRoom allows it and at least two members
	// that are not vouched are lost, does a node at its maximum give up a
	// link (WhyRoom): an unproven gossip member may be invented by anyone
	// with the gossip key, and a certificate holder that never speaks
	// routing is lost at every node that is not linked to it, whatever
	// handshake proved its address.
	Vouched bool
	// RTT is the round trip to the member measured by gossip's probes; 0
	// when not measured yet. Unlike Coord it is not the member's own
	// report, but a holder of the gossip key can still shorten it: gossip
	// matches a probe's ack by its sequence number only, so an ack sent
	// ahead of the probe makes a short RTT. Shortcuts floor it at the
	// nearest link's RTT; neighbour choice uses it as measured.
	RTT time.Duration
	// Route is the round-trip latency of the route routing has to the
	// member (its cost without the first hop's loss and pinned excess);
	// 0 when routing has none.
	Route time.Duration
}

// Link is one live link of this node.
type Link struct {
	Peer     string
	Outbound bool          // this node dialled
	RTT      time.Duration // measured; 0 when not known
	Static   bool          // configured by the operator: never dropped or counted
	// Age is how long the link has been up; 0 when not known, which
	// counts as old.
	Age time.Duration
	// Streams is the number of circuits open on the link.
	Streams int
	// Claimed: the peer dialled this link and keeps it as static on its
	// side (it said so in the link hello). Honoured for Config.StaticIn
	// incoming links, the oldest first.
	Claimed bool
	// Alternates is how many other neighbours reach the peer without
	// this node (they advertise a route to it, or to a destination the
	// peer also advertises a route to): above 0, closing the link is
	// unlikely to cut the peer off.
	Alternates int
	// Repair marks a link coming up (Admit) from a member routing does
	// not reach: a new member, or the other side of a partition.
	Repair bool
	// Shortcut marks a link this node dialled as a shortcut (WhyShortcut):
	// no closer neighbour replaces it while it stays nearby.
	Shortcut bool
	// Long marks a link this node dialled as a long link (WhyLong): it
	// stays the long link while its peer is a router outside the near
	// neighbours, whichever router the seeded hash ranks first, unless
	// another long link of this node takes its place: one to a router of
	// lower hash that had refused at its maximum (Input.Full), once that
	// link is MinAge old.
	Long bool
	// Stranded is how many destinations this node's routing would lose
	// for a while if the link closed: routes whose next hop is the peer
	// and that have no loop-free alternate (Babel's feasibility
	// condition leaves them unreachable until a newer seqno comes). A
	// link is replaced only while it is 0: once the routes through the
	// replacement are in.
	Stranded int
	// Replacing: the caller is draining the link to close it, for a
	// replacement this policy asked for (WhyReplace). While the link may
	// still be replaced, it is the one replaced, before any farther one:
	// a farther link coming of age, or round trips that reorder, would
	// otherwise stop the drain under way, and the caller keeps a link
	// whose drain stopped, for a while.
	Replacing bool
}

// Input is everything Plan looks at.
type Input struct {
	Self string
	Leaf bool
	// Coord is this node's coordinate; nil when unknown. Coordinate
	// estimates rank members for links only while its Error is at most
	// TrustError; beyond bootstrapping they order Plan.Probe in any case.
	Coord *coordinate.Coordinate
	// Members are the alive gossip members (this node may be among them).
	Members []Member
	Links   []Link
	// Unreachable lists members routing has not reached for a while (the
	// caller decides how long); they trigger partition repair.
	Unreachable []string
	// Unavailable lists members not to dial now (backing off, or a dial
	// in progress).
	Unavailable []string
	// Full lists routers that refused this node's link at their maximum
	// (AtMaximum) and to which no link this node dialled came up since:
	// the long link passes over them (LongTries), and dials them again
	// when they are not Unavailable, to come back to them.
	Full []string
	// Failed lists routers this node's last dial to failed other than
	// by a refusal at the maximum (unreachable, a handshake timeout, a
	// link that did not last, a host down that gossip still lists) and
	// to which no link this node dialled came up since: the long link
	// passes over them as over Full ones.
	Failed []string
	// NoRoom: give up no link for a lost member now (the caller's rate
	// limit of room-making). UnvouchedRoom: a lost member that is not
	// Vouched may have room made for it too.
	NoRoom, UnvouchedRoom bool
	// Probing lists members whose round trip the caller is measuring or
	// measured lately without an answer: Plan.Probe leaves them out.
	Probing []string
	Config  Config
}

// Why is the kind of a decision: a small fixed set, fit for a metric
// label.
type Why string

// The kinds of decisions.
const (
	WhyTarget  Why = "target"  // add: a near neighbour, below the target degree
	WhyLong    Why = "long"    // add: a random long link, below the target degree
	WhyRepair  Why = "repair"  // add: a member routing cannot reach
	WhyReplace Why = "replace" // add: clearly closer than a current link; drop: the link it replaced
	WhyMax     Why = "max"     // drop: degree above the maximum
	WhyRoom    Why = "room"    // drop: a redundant idle link, for a repair link at the maximum
	// add: a nearby member whose route is much longer than its distance
	WhyShortcut Why = "shortcut"
)

// Drop is a link to close and why.
type Drop struct {
	Peer   string
	Reason string // for people: names the replacement, if any
	Why    Why
}

// Plan is the policy's decision.
type Plan struct {
	Add  []Member // members to dial, best first
	Why  []Why    // Why[i] is why Add[i] is added
	Drop []Drop
	// Probe lists members whose round trip the caller should measure,
	// nearest first: the routers nearest by coordinate estimate whose
	// round trip gossip's probes have not measured, within the radius
	// of the near neighbours (where shortcuts and replacements are
	// chosen, and only by measured round trips), at most Config.Probes.
	// Gossip probes one member a second, chosen at random: with
	// hundreds of members a node would otherwise know the round trip to
	// few of its nearest for many minutes.
	Probe []string
}

// Decide computes the links to add and drop.
func Decide(in Input) Plan {
	s := scratchPool.Get().(*scratch)
	defer s.put()
	p := planner{in: in, cfg: in.Config.withDefaults(), linked: s.linked, members: s.members,
		dists: s.dists, hashes: s.hashes, s: s}
	if in.Coord != nil && in.Coord.Error <= TrustError {
		p.coord = in.Coord
	}
	plan := p.plan()
	plan.Probe = p.probes()
	return plan
}

// scratch holds a step's tables between calls of Decide. A router of a
// mesh of n members runs Decide every second or two, and making its four
// tables of n entries, the candidates and the sort's keys each time was
// most of a policy step's garbage (BenchmarkDecide). A pool, not a table
// per caller: between steps the tables hold nothing, and a process
// simulating n nodes, each with its own table of n entries, would keep n²
// entries live; the steps running at once need only a few.
type scratch struct {
	linked  map[string]Link
	members map[string]Member
	dists   map[string]time.Duration
	hashes  map[string]uint64
	cands   []Member // plan's candidates
	ranked  []Member // probes' candidates, ranked by estimate
	keys    []sortKey
	sorted  []Member
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{linked: map[string]Link{}, members: map[string]Member{},
		dists: map[string]time.Duration{}, hashes: map[string]uint64{}}
}}

// put empties s, so that it keeps no member alive, and returns it to the
// pool.
func (s *scratch) put() {
	clear(s.linked)
	clear(s.members)
	clear(s.dists)
	clear(s.hashes)
	clear(s.cands[:cap(s.cands)])
	clear(s.ranked[:cap(s.ranked)])
	clear(s.sorted[:cap(s.sorted)])
	s.cands, s.ranked, s.keys, s.sorted = s.cands[:0], s.ranked[:0], s.keys[:0], s.sorted[:0]
	scratchPool.Put(s)
}

type planner struct {
	in      Input
	cfg     Config
	coord   *coordinate.Coordinate // in.Coord when its error is at most TrustError, else nil
	linked  map[string]Link
	members map[string]Member
	cands   []Member        // routers, nearest first (plan)
	near    map[string]bool // the wanted near neighbours (plan)
	known   int             // routers of known distance (plan)
	degree  int
	dists   map[string]time.Duration // memo of dist
	hashes  map[string]uint64        // memo of hash
	s       *scratch                 // Decide's reused slices (nil outside Decide)
}

// unknown is the distance of a member with no estimate: far, after every
// measured or estimated one.
const unknown = time.Duration(math.MaxInt64 / 4)

func (p *planner) plan() Plan {
	p.in.Links = p.honourClaims(p.in.Links)
	for _, l := range p.in.Links {
		p.linked[l.Peer] = l
		if !l.Static {
			p.degree++
		}
	}
	for _, m := range p.in.Members {
		if m.Name != p.in.Self && m.Name != "" {
			p.members[m.Name] = m
		}
	}
	unavailable := set(p.in.Unavailable)
	// Candidates: routers only (a router lets leaves dial it; a leaf never
	// links to another leaf).
	cands := p.s.cands[:0]
	for _, m := range p.members {
		if !m.Leaf {
			cands = append(cands, m)
		}
	}
	p.sortNearest(cands)
	p.cands, p.s.cands = cands, cands
	for _, m := range cands {
		if p.dist(m) < unknown {
			p.known++
		}
	}

	wanted := map[string]bool{}
	near := map[string]bool{}
	p.near = near
	nNear, nLong := p.cfg.Target-p.cfg.Long, p.cfg.Long
	if p.in.Leaf {
		nNear, nLong = p.cfg.Leaf, 0
	}
	for _, m := range cands[:min(nNear, len(cands))] {
		wanted[m.Name], near[m.Name] = true, true
	}
	// The long links: first the links this node dialled as long links
	// (Link.Long) to routers outside the near set, so that a long link
	// stays while the near set shifts (a router of lower hash leaving it
	// would otherwise take its place), one under MinAge old after the
	// others (on trial: a router at its maximum refuses a link as it
	// comes up, so a link just up does not yet displace an older long
	// link); then, for the slots left, the routers in the seeded hash's
	// order (ties by name) that have not refused this node's link at
	// their maximum (Input.Full) nor failed its dial (Input.Failed),
	// among the first Long+LongTries−1.
	full := set(p.in.Full)
	for _, name := range p.in.Failed {
		full[name] = true
	}
	var kept []Member
	for _, l := range p.in.Links {
		if m, ok := p.members[l.Peer]; ok && l.Long && l.Outbound && !m.Leaf && !wanted[m.Name] {
			kept = append(kept, m)
		}
	}
	slices.SortFunc(kept, func(a, b Member) int {
		if ta, tb := p.onTrial(p.linked[a.Name]), p.onTrial(p.linked[b.Name]); ta != tb {
			if ta {
				return 1
			}
			return -1
		}
		return p.byHash(a.Name, b.Name)
	})
	long := map[string]bool{}
	for _, m := range kept[:min(nLong, len(kept))] {
		wanted[m.Name], long[m.Name] = true, true
		nLong--
	}
	var order []string // the long links' candidates, by hash
	if nLong > 0 || len(full) > 0 && !p.in.Leaf && p.cfg.Long > 0 {
		order = p.longOrder(near, p.cfg.Long+LongTries-1)
	}
	for _, name := range order {
		if nLong == 0 {
			break
		}
		if _, linked := p.linked[name]; wanted[name] || full[name] && !linked {
			continue
		}
		wanted[name], long[name] = true, true
		nLong--
	}
	// Coming back: the routers among those candidates that refused this
	// node's link at their maximum and rank before a long link it holds
	// (before every candidate, when it holds fewer long links than Long)
	// are dialled again as its back-off from them allows (Unavailable);
	// once one is up and off trial, it is the long link, and the one it
	// ranks before is unwanted (it goes as the swap below, or a closer
	// neighbour, replaces an unwanted link).
	var retry []Member
	if len(full) > 0 {
		var last string // the long link of the highest hash
		for name := range long {
			if last == "" || p.byHash(name, last) > 0 {
				last = name
			}
		}
		for _, name := range order {
			if _, linked := p.linked[name]; full[name] && !linked && !long[name] &&
				(len(long) < p.cfg.Long || p.byHash(name, last) < 0) {
				retry = append(retry, p.members[name])
			}
		}
	}

	var out Plan
	added := map[string]bool{}
	target, hardMax := p.cfg.Target, p.cfg.Max
	if p.in.Leaf {
		target = min(p.cfg.Leaf, hardMax)
	}
	// hold: bootstrapping, a link to a router whose round trip is not
	// measured waits for the probes, but not the first. A coordinate
	// estimate does not count: the node's own coordinate starts at the
	// origin, and a member's is its own report, which a liar can put
	// next to anyone's.
	hold := p.bootstrapping() && len(p.in.Probing) < BootstrapAsk
	add := func(m Member, why Why) bool {
		if len(out.Add) >= p.cfg.Adds || p.degree+len(out.Add) >= hardMax {
			return false
		}
		if hold && why == WhyTarget && p.degree+len(out.Add) >= 1 && !p.measured(m) {
			return false
		}
		if _, ok := p.linked[m.Name]; ok || added[m.Name] || unavailable[m.Name] || m.Addr == "" {
			return false
		}
		if p.in.Leaf && m.Leaf {
			return false
		}
		added[m.Name] = true
		out.Add = append(out.Add, m)
		out.Why = append(out.Why, why)
		return true
	}

	// Above the hard maximum: drop the least useful links. Idle before
	// carrying circuits (closing a link ends the circuits on it); unwanted
	// before wanted; any before a link to
	// a member routing could not reach (a repair link just up); incoming
	// before outgoing; young (under MinAge: most often the link that took
	// the node above its maximum, so that is refused in effect) before
	// old; far before near.
	if excess := p.degree - hardMax; excess > 0 {
		var ls []Link
		for _, l := range p.in.Links {
			if !l.Static {
				ls = append(ls, l)
			}
		}
		lost := set(p.in.Unreachable)
		young := func(l Link) bool { return l.Age > 0 && l.Age < p.cfg.MinAge }
		sort.Slice(ls, func(i, j int) bool {
			a, b := ls[i], ls[j]
			if (a.Streams > 0) != (b.Streams > 0) {
				return a.Streams == 0
			}
			if wanted[a.Peer] != wanted[b.Peer] {
				return !wanted[a.Peer]
			}
			if lost[a.Peer] != lost[b.Peer] {
				return !lost[a.Peer]
			}
			if a.Outbound != b.Outbound {
				return !a.Outbound
			}
			if young(a) != young(b) {
				return young(a)
			}
			da, db := p.linkDist(a), p.linkDist(b)
			if da != db {
				return da > db
			}
			return a.Peer < b.Peer
		})
		for _, l := range ls[:excess] {
			reason := "degree above the maximum"
			if l.Claimed && !l.Outbound {
				reason = fmt.Sprintf("degree above the maximum of %d links, and %d links static for their dialler already kept on top", hardMax, p.cfg.StaticIn)
			}
			out.Drop = append(out.Drop, Drop{Peer: l.Peer, Reason: reason, Why: WhyMax})
		}
		return out
	}

	// Partition repair: gossip knows members routing cannot reach.
	if !p.in.Leaf {
		var lost []Member
		for _, name := range p.in.Unreachable {
			if m, ok := p.members[name]; ok && !m.Leaf {
				lost = append(lost, m)
			}
		}
		p.sortNearest(lost)
		for _, m := range lost {
			if add(m, WhyRepair) {
				break
			}
		}
		// At the maximum with a lost member to dial: give up a redundant
		// idle link so that the next call can dial it. For members none
		// of which is vouched, only while UnvouchedRoom allows it and at
		// least two are lost: two full groups whose gossip merged lose
		// each other's members, while a lone lost member dials this node
		// itself (admission makes room for it), and a lone member that
		// routing cannot reach through the node it linked to (it speaks
		// no routing) had every full node give up a link for it.
		vouched, unvouched := 0, 0
		for _, m := range lost {
			if _, linked := p.linked[m.Name]; linked || unavailable[m.Name] || m.Addr == "" {
				continue
			}
			if m.Vouched {
				vouched++
			} else {
				unvouched++
			}
		}
		if len(out.Add) == 0 && p.degree >= hardMax && !p.in.NoRoom && (vouched > 0 || p.in.UnvouchedRoom && unvouched >= 2) {
			if victim, ok := room(p.cfg, p.in.Links, p.in.Unavailable); ok {
				out.Drop = append(out.Drop, Drop{Peer: victim, Reason: "room for a link to a member routing cannot reach", Why: WhyRoom})
				return out
			}
		}
	}

	// Fill up to the target: the long links first (the shortcuts that
	// keep the diameter small would otherwise be crowded out by incoming
	// near links), then the wanted near ones, then the nearest others.
	if p.degree+len(out.Add) < target {
		for _, m := range cands {
			if wanted[m.Name] && !near[m.Name] && p.degree+len(out.Add) < target {
				add(m, WhyLong)
			}
		}
		for _, m := range cands {
			if near[m.Name] && p.degree+len(out.Add) < target {
				add(m, WhyTarget)
			}
		}
		for _, m := range cands {
			if p.degree+len(out.Add) >= target {
				break
			}
			add(m, WhyTarget)
		}
		return out
	}

	radius := p.radius(near)

	// A missing long link at or above the target: its router could not
	// be dialled while the node filled up (down, backing off, at its
	// maximum), so the nearest other router took its slot, or the link
	// was lost while incoming links kept the node at its target. Without
	// this the node held no long link from then on. The node dials it in
	// place of its least useful local link (swapVictims); at its target
	// with such a link too young to be replaced yet (the links a node
	// makes while it joins) it waits until that one may be; without any
	// such link, or above its target, it dials the long link beside its
	// links, also into its last slot below Max: its links may all be
	// ones it keeps (incoming, static, bridges) for good, and a repair
	// link is admitted at Max in place of a redundant idle link anyway.
	missing := false
	for name := range long {
		if _, ok := p.linked[name]; !ok {
			missing = true
		}
	}
	victims, young := p.swapVictims(wanted, radius)
	if missing && (len(victims) > 0 || p.degree > target || young == 0) {
		for _, m := range cands {
			if long[m.Name] {
				add(m, WhyLong)
			}
		}
	}
	// Every long link up: dial one router that refused at its maximum
	// and ranks before one of them again, beside the links (Coming back,
	// above), while below Max.
	if !missing {
		for _, m := range retry {
			if add(m, WhyLong) {
				break
			}
		}
	}
	// Once the long link is up, a node one link above its target drops
	// the least useful local link that was up at least MinAge before
	// the long link, as a link the long link was dialled to replace is
	// (make before break, one link per long link): only while the long
	// link is under MinAge + ReplaceSpread old, so that links made later
	// above the target (incoming links, shortcuts) are not taken for a
	// swap, and the links a node made together while it joined are not
	// taken for one either.
	if p.degree == target+1 {
		for _, l := range p.in.Links {
			if !long[l.Peer] || !l.Outbound || !l.Long || l.Age == 0 || l.Age >= p.cfg.MinAge+ReplaceSpread {
				continue
			}
			for _, v := range victims {
				if v.Age == 0 || v.Age-l.Age >= max(p.cfg.MinAge, time.Nanosecond) {
					out.Drop = append(out.Drop, Drop{Peer: v.Peer, Reason: "replaced by the long link to " + l.Peer, Why: WhyReplace})
					return out
				}
			}
		}
	}

	// Hysteresis: replace an unwanted outgoing link only by a clearly
	// closer wanted neighbour; drop it once that one is up. A shortcut
	// that is still nearby is not replaced.
	var spare []Link
	for _, l := range p.in.Links {
		if l.Outbound && !l.Static && !wanted[l.Peer] && p.replaceable(l) &&
			(!l.Shortcut || p.linkDist(l) > radius) {
			spare = append(spare, l)
		}
	}
	sort.Slice(spare, func(i, j int) bool {
		if spare[i].Replacing != spare[j].Replacing {
			return spare[i].Replacing
		}
		di, dj := p.linkDist(spare[i]), p.linkDist(spare[j])
		if di != dj {
			return di > dj
		}
		return spare[i].Peer < spare[j].Peer
	})
	for _, l := range spare {
		worse := p.linkDist(l)
		// A wanted near neighbour already linked that is clearly better:
		// the replacement is up, drop the spare link, unless no other
		// neighbour reaches its peer (a bridge, such as the one link
		// between two regions after a heal: dropping it would split the
		// mesh, and the repair that follows would add it back).
		if p.degree > target {
			for name := range near {
				if nl, ok := p.linked[name]; ok && p.clearlyBetter(p.linkDist(nl), worse) && !p.partitioned() && l.Alternates > 0 && l.Stranded == 0 {
					out.Drop = append(out.Drop, Drop{Peer: l.Peer, Reason: "replaced by a closer neighbour " + name, Why: WhyReplace})
					return out
				}
			}
		}
		if slices.ContainsFunc(cands, func(m Member) bool {
			return near[m.Name] && p.clearlyBetter(p.dist(m), worse) && add(m, WhyReplace)
		}) {
			break
		}
	}

	// Shortcuts, one per call, while the degree leaves shortcutRoom for
	// repair links: the nearby member whose route is the longest against
	// its estimated distance, when that is clearly longer. A member this
	// call adds already is skipped, so that the shortcut goes to the next.
	for _, m := range p.shortcuts(cands, radius) {
		if p.degree+len(out.Add) >= hardMax-shortcutRoom || add(m, WhyShortcut) {
			break
		}
	}
	return out
}

// partitioned reports whether a member routing reached before
// (Member.Vouched) is among Input.Unreachable: the mesh is split, and a
// link of this node may be the bridge to the other side, so no link is
// replaced, swapped or added as a shortcut until repair links it again. A
// member that routing never reached (a router whose link port a firewall
// drops, a member that never accepts a link, or one linked to this node
// or another that never speaks routing) splits nothing: no route of this
// node leads to it. Before, a member whose address a handshake had proved
// counted too, so a member linked to this node that never spoke routing
// held the policy for as long as it stayed a member. It is still dialled for repair as its back-off
// allows, but it does not hold the rest of the policy: before, one such
// member kept every node of a mesh from replacing and shortcutting its
// links for as long as it stayed a member.
func (p *planner) partitioned() bool {
	for _, name := range p.in.Unreachable {
		if m, ok := p.members[name]; !ok || m.Vouched {
			return true
		}
	}
	return false
}

// onTrial reports whether l, a long link, is under MinAge old: a router
// at its maximum refuses a link as it comes up, so such a link does not
// yet take the place of an older long link.
func (p *planner) onTrial(l Link) bool {
	return l.Age > 0 && l.Age < p.cfg.MinAge
}

// longOrder returns up to k routers outside near, of the lowest seeded
// hash first (ties by name): the long links' candidates. It picks them
// in one pass rather than sorting every router.
func (p *planner) longOrder(near map[string]bool, k int) []string {
	out := make([]string, 0, k+1)
	for _, m := range p.cands {
		if near[m.Name] {
			continue
		}
		i, _ := slices.BinarySearchFunc(out, m.Name, p.byHash)
		if i >= k {
			continue
		}
		out = slices.Insert(out, i, m.Name)
		if len(out) > k {
			out = out[:k]
		}
	}
	return out
}

// replaceable reports whether l is old enough to be replaced by a closer
// neighbour: MinAge plus up to ReplaceSpread more, by the seeded hash of
// its peer, so that the links a mesh made in one burst (nodes joining
// together) do not all come up for replacement in the same second. Each
// replacement costs routing a moment of convergence; spread out, they do
// not pile up. A link of unknown age counts as old.
func (p *planner) replaceable(l Link) bool {
	if l.Age == 0 {
		return true
	}
	if p.cfg.MinAge == 0 {
		return true
	}
	return l.Age >= p.cfg.MinAge+time.Duration(p.hash(l.Peer)%uint64(ReplaceSpread))
}

// swapVictims returns the local links a missing long link may replace,
// the least useful first: outgoing links to routers that are not wanted
// (neither near nor long), not static, not a shortcut still nearby, old
// enough to be replaced (replaceable), that another neighbour reaches
// past (Alternates) and that no route depends on alone (Stranded); the
// one being drained first (Replacing), then idle ones, then the
// farthest. young counts the links that would be among them but for
// their age. None while the mesh is partitioned (partitioned): repair
// goes first, and a link then may be a bridge.
func (p *planner) swapVictims(wanted map[string]bool, radius time.Duration) (vs []Link, young int) {
	if p.partitioned() {
		return nil, 0
	}
	for _, l := range p.in.Links {
		if !l.Outbound || l.Static || wanted[l.Peer] || l.Shortcut && p.linkDist(l) <= radius {
			continue
		}
		switch {
		case !p.replaceable(l):
			young++
		case l.Alternates > 0 && l.Stranded == 0:
			vs = append(vs, l)
		}
	}
	sort.Slice(vs, func(i, j int) bool {
		a, b := vs[i], vs[j]
		if a.Replacing != b.Replacing {
			return a.Replacing
		}
		if (a.Streams > 0) != (b.Streams > 0) {
			return a.Streams == 0
		}
		if da, db := p.linkDist(a), p.linkDist(b); da != db {
			return da > db
		}
		return a.Peer < b.Peer
	})
	return vs, young
}

// bootstrapping reports whether this node is a router that knows the
// distance to fewer than 2×Target routers (after plan's ranking).
func (p *planner) bootstrapping() bool {
	return !p.in.Leaf && p.cfg.Probes > 0 && p.known < 2*p.cfg.Target && p.known < len(p.cands)
}

// measured reports whether the round trip to m was measured: on the link
// to it, or by gossip's probes.
func (p *planner) measured(m Member) bool {
	l, ok := p.linked[m.Name]
	return ok && l.RTT > 0 || m.RTT > 0
}

// probes returns the members Plan.Probe lists (after plan).
func (p *planner) probes() []string {
	if p.cfg.Probes == 0 {
		return nil
	}
	if p.bootstrapping() {
		// Not by an untrusted coordinate: the hold links the routers
		// measured, and a member claiming this node's place would be
		// measured first.
		return p.unmeasured(p.cands, len(p.cands), max(p.cfg.Probes, BootstrapProbes))
	}
	cands, est := p.cands, p.dist
	if p.coord == nil && p.in.Coord != nil {
		// This node's own coordinate, not trusted (TrustError), ranks
		// no link but orders the probes, whose round trips do.
		est = p.estimate
		cands = append(p.s.ranked[:0], cands...)
		p.s.ranked = cands
		p.sortBy(cands, est)
	}
	radius := p.radius(p.near)
	if radius == 0 {
		return nil
	}
	n := 0
	for _, m := range cands { // nearest first
		if est(m) > radius {
			break // unknown distances sort last
		}
		n++
	}
	return p.unmeasured(cands, n, p.cfg.Probes)
}

// estimate is dist, or else the estimate of this node's own coordinate
// even when it is not trusted (probes only).
func (p *planner) estimate(m Member) time.Duration {
	if d := p.dist(m); d < unknown {
		return d
	}
	return coordEstimate(p.in.Coord, m.Coord)
}

// unmeasured returns up to limit of the first n of cands (nearest
// first, unknown distances by the seeded hash) that are not linked, have
// no measured round trip and are not being probed.
func (p *planner) unmeasured(cands []Member, n, limit int) []string {
	var skip map[string]bool
	var out []string
	for _, m := range cands[:n] {
		if _, ok := p.linked[m.Name]; ok || m.RTT > 0 {
			continue
		}
		if skip == nil {
			skip = set(p.in.Probing)
		}
		if skip[m.Name] {
			continue
		}
		if out = append(out, m.Name); len(out) == limit {
			break
		}
	}
	return out
}

// shortcutRoom is the link slots shortcuts leave free: one, so that a
// new member's link (a repair link) is admitted without the node giving
// up another. Inside a region every direct link saves a hop, so the
// degree shortcuts may use is what bounds the path stretch there: on the
// simulator (100 nodes in three regions, 1 ms inside) leaving two slots
// gave a mean stretch of 1.30, one 1.28 with no link changes a minute
// after the joins, none 1.28 with 5–7 link changes per node per minute
// going on (nodes at their maximum making room, and refusing).
const shortcutRoom = 1

// radius is the distance within which a member is nearby: Replace times
// the farthest near neighbour's distance plus Slack (0 when none is known).
func (p *planner) radius(near map[string]bool) time.Duration {
	var far time.Duration
	for name := range near {
		d := p.dist(p.members[name])
		if d >= unknown {
			continue
		}
		far = max(far, d)
	}
	if far == 0 {
		return 0
	}
	return time.Duration(p.cfg.Replace*float64(far)) + p.cfg.Slack
}

// shortcuts returns the members a shortcut may go to, the best first: for
// a router at its target degree from which routing reaches every router
// member, the unlinked nearby members whose route is at least Stretch
// times their measured RTT and Gain more, ordered by that ratio. The
// distance is the probes' RTT, floored at the nearest link's RTT: never a
// coordinate, which a member reports itself and could place on this
// node's to attract links.
func (p *planner) shortcuts(cands []Member, radius time.Duration) []Member {
	if p.in.Leaf || p.cfg.Stretch == 0 || radius == 0 || p.degree < p.cfg.Target || p.partitioned() {
		return nil
	}
	var unreached map[string]bool
	floor := time.Duration(0)
	for _, l := range p.in.Links {
		if l.RTT > 0 && (floor == 0 || l.RTT < floor) {
			floor = l.RTT
		}
	}
	floor = max(floor, MinRTT)
	type cand struct {
		m          Member
		ratio      float64
		gain, hash uint64
	}
	var cs []cand
	for _, m := range cands {
		if m.Route <= 0 {
			if unreached == nil {
				unreached = set(p.in.Unreachable)
			}
			if !unreached[m.Name] {
				return nil // a member routing does not reach yet: not settled
			}
			// Lost for a while and never reached (partitioned): no route
			// will come by waiting, and no link of this node leads to it.
			continue
		}
		if _, ok := p.linked[m.Name]; ok || m.RTT <= 0 {
			continue
		}
		est := max(m.RTT, floor)
		if est > radius || float64(m.Route) < p.cfg.Stretch*float64(est) || m.Route < est+p.cfg.Gain {
			continue
		}
		cs = append(cs, cand{m: m, ratio: float64(m.Route) / float64(est), gain: uint64(m.Route - est), hash: p.hash(m.Name)})
	}
	sort.Slice(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		switch {
		case a.ratio != b.ratio:
			return a.ratio > b.ratio
		case a.gain != b.gain:
			return a.gain > b.gain
		case a.hash != b.hash:
			return a.hash < b.hash
		}
		return a.m.Name < b.m.Name
	})
	out := make([]Member, len(cs))
	for i, c := range cs {
		out[i] = c.m
	}
	return out
}

// honourClaims returns links with the oldest StaticIn incoming links
// claimed static by their dialler marked Static; the others are unchanged
// (and links is not modified).
func (p *planner) honourClaims(links []Link) []Link {
	var claimed []int
	for i, l := range links {
		if l.Claimed && !l.Outbound && !l.Static {
			claimed = append(claimed, i)
		}
	}
	if len(claimed) == 0 || p.cfg.StaticIn == 0 {
		return links
	}
	age := func(l Link) time.Duration {
		if l.Age == 0 { // unknown counts as old
			return math.MaxInt64
		}
		return l.Age
	}
	sort.Slice(claimed, func(i, j int) bool {
		a, b := links[claimed[i]], links[claimed[j]]
		if age(a) != age(b) {
			return age(a) > age(b)
		}
		return a.Peer < b.Peer
	})
	out := append([]Link(nil), links...)
	for _, i := range claimed[:min(p.cfg.StaticIn, len(claimed))] {
		out[i].Static = true
	}
	return out
}

func (p *planner) clearlyBetter(d, than time.Duration) bool {
	if d >= unknown || than >= unknown {
		return false
	}
	return time.Duration(p.cfg.Replace*float64(d))+p.cfg.Slack < than
}

// dist is the distance to a member: the measured RTT of the link to it,
// else the probes' RTT, else the coordinate estimate, else unknown.
func (p *planner) dist(m Member) time.Duration {
	if d, ok := p.dists[m.Name]; ok {
		return d
	}
	d := p.distOf(m)
	p.dists[m.Name] = d
	return d
}

func (p *planner) distOf(m Member) time.Duration {
	if l, ok := p.linked[m.Name]; ok && l.RTT > 0 {
		return l.RTT
	}
	if m.RTT > 0 {
		return m.RTT
	}
	return coordEstimate(p.coord, m.Coord)
}

// coordEstimate is the distance of coordinates a and b (at least 1 ns),
// unknown when either is nil or they are not compatible.
func coordEstimate(a, b *coordinate.Coordinate) time.Duration {
	if a == nil || b == nil || !a.IsCompatibleWith(b) {
		return unknown
	}
	if d := coordDistance(a, b); d > 0 {
		return d
	}
	return time.Nanosecond
}

// coordDistance is a.DistanceTo(b) (a and b compatible) without the
// vector DistanceTo allocates for their difference: a step ranks every
// member by it, and that allocation was most of the ranking's garbage.
func coordDistance(a, b *coordinate.Coordinate) time.Duration {
	var sum float64
	for i := range a.Vec {
		d := a.Vec[i] - b.Vec[i]
		sum += d * d
	}
	dist := math.Sqrt(sum) + a.Height + b.Height
	if adjusted := dist + a.Adjustment + b.Adjustment; adjusted > 0 {
		dist = adjusted
	}
	return time.Duration(dist * 1e9)
}

func (p *planner) linkDist(l Link) time.Duration {
	if l.RTT > 0 {
		return l.RTT
	}
	if m, ok := p.members[l.Peer]; ok {
		return p.dist(m)
	}
	return unknown
}

// sortNearest orders members nearest first, ties by the seeded hash, then
// by name. The keys are computed once per member, not per comparison:
// with hundreds of members the comparisons' map lookups were most of a
// policy step.
func (p *planner) sortNearest(ms []Member) { p.sortBy(ms, p.dist) }

// sortBy orders members by dist, ties by the seeded hash, then by name.
func (p *planner) sortBy(ms []Member, dist func(Member) time.Duration) {
	ks := p.s.keys[:0]
	for i, m := range ms {
		ks = append(ks, sortKey{d: dist(m), h: p.hash(m.Name), i: i})
	}
	p.s.keys = ks
	slices.SortFunc(ks, func(a, b sortKey) int {
		switch {
		case a.d != b.d:
			return cmp.Compare(a.d, b.d)
		case a.h != b.h:
			return cmp.Compare(a.h, b.h)
		}
		return strings.Compare(ms[a.i].Name, ms[b.i].Name)
	})
	sorted := p.s.sorted[:0]
	for _, k := range ks {
		sorted = append(sorted, ms[k.i])
	}
	p.s.sorted = sorted
	copy(ms, sorted)
}

// sortKey is sortBy's key of member i of the slice it sorts.
type sortKey struct {
	d time.Duration
	h uint64
	i int
}

// hash is a stable pseudo-random rank of name as seen from this node:
// FNV-1a of the seed and both names, mixed by SplitMix64's finalizer.
// FNV-1a alone ranks names that differ only in their last characters
// (n0000 … n0999) by little more than their common prefix: its last
// multiplication carries the last byte into the high bits weakly, so
// every node's lowest hash fell on the same few routers
// (TestLongLinksSpreadOverTheMesh: 131 routers took the long links of
// 1000 nodes, one of them 46).
func (p *planner) hash(name string) uint64 {
	if v, ok := p.hashes[name]; ok {
		return v
	}
	// FNV-1a as hash/fnv computes it (TestHashIsFNV1a), without its
	// allocations: a step ranks every member by it.
	h := uint64(fnvOffset)
	for i := range 8 {
		h = (h ^ uint64(byte(p.cfg.Seed>>(8*i)))) * fnvPrime
	}
	for i := range len(p.in.Self) {
		h = (h ^ uint64(p.in.Self[i])) * fnvPrime
	}
	h *= fnvPrime // the separating zero byte
	for i := range len(name) {
		h = (h ^ uint64(name[i])) * fnvPrime
	}
	v := splitmix.Mix(h)
	p.hashes[name] = v
	return v
}

// The 64-bit FNV-1a's offset basis and prime.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func set(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// byHash orders router names as long links are chosen: by the seeded
// hash, ties by name.
func (p *planner) byHash(a, b string) int {
	if c := cmp.Compare(p.hash(a), p.hash(b)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}
