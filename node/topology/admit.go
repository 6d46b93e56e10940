package topology

import (
	"fmt"
	"sort"
)

// AtMaximum starts the reason of a link refused because it would take the
// node past its maximum; a dialler recognises the refusal by it.
const AtMaximum = "at its link maximum"

// Slots counts the degree a node's links and pending dials take (as Plan
// counts it: static links and the honoured StaticIn claims excluded, a
// peer counted once however many links or dials it has) and returns how
// many more links fit under Max. Pending are the members this node is
// dialling or dialled; a dial holds its slot before its link is up, so
// that links that come up together cannot overshoot.
func Slots(cfg Config, links []Link, pending []string) int {
	cfg = cfg.withDefaults()
	degree, _, _ := count(cfg, links, pending)
	return max(cfg.Max-degree, 0)
}

// Admission is Admit's decision on a link coming up.
type Admission struct {
	OK bool
	// Evict, when set, is the peer whose link must close first to make
	// room (at the maximum, for a repair link): the degree never exceeds
	// Max, and the evicted peer stays reachable through another
	// neighbour.
	Evict string
	// Reason is why the link is refused; it starts with AtMaximum.
	Reason string
}

// Admit decides on a new link l next to links and pending (see Slots). It
// admits a static link, a link to a peer that already holds a slot, an
// incoming link claimed static while fewer than StaticIn claims are
// honoured, or any link while degree is below Max. At Max it admits a
// repair link (l.Repair: a member routing does not reach, a new member or
// the other side of a partition) in place of the link Room picks, if any;
// otherwise it refuses with a reason that starts with AtMaximum.
// Admission is the hard bound: Plan's drops above Max only follow a
// lowered Max or an operator's links.
func Admit(cfg Config, links []Link, pending []string, l Link) Admission {
	cfg = cfg.withDefaults()
	if l.Static {
		return Admission{OK: true}
	}
	degree, honoured, held := count(cfg, links, pending)
	switch {
	case held[l.Peer]:
		return Admission{OK: true}
	case l.Claimed && !l.Outbound && honoured < cfg.StaticIn:
		return Admission{OK: true}
	case degree < cfg.Max:
		return Admission{OK: true}
	}
	if l.Repair {
		if victim, ok := room(cfg, links, pending); ok {
			return Admission{OK: true, Evict: victim}
		}
	}
	if l.Claimed && !l.Outbound && cfg.StaticIn > 0 {
		return Admission{Reason: fmt.Sprintf("%s of %d links, and %d links static for their dialler already kept on top", AtMaximum, cfg.Max, cfg.StaticIn)}
	}
	return Admission{Reason: fmt.Sprintf("%s of %d links", AtMaximum, cfg.Max)}
}

// Room returns the link a node at its maximum gives up for a repair link:
// one that counts against Max (not static, not an honoured claim), carries
// no circuit, is not to a peer being dialled, and whose peer another
// neighbour reaches without this node (Alternates > 0), so closing it
// cuts no one off. Of those, the most redundant (most alternates), then
// incoming before outgoing (outgoing links are the node's own choice),
// then the farthest (measured RTT), then the oldest. ok is false when no
// link qualifies.
func Room(cfg Config, links []Link, pending []string) (peer string, ok bool) {
	return room(cfg.withDefaults(), links, pending)
}

// room is Room with cfg's defaults applied.
func room(cfg Config, links []Link, pending []string) (string, bool) {
	p := planner{cfg: cfg}
	busy := set(pending)
	var cands []Link
	for _, l := range p.honourClaims(links) {
		if !l.Static && l.Streams == 0 && l.Alternates > 0 && !busy[l.Peer] {
			cands = append(cands, l)
		}
	}
	if len(cands) == 0 {
		return "", false
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		switch {
		case a.Alternates != b.Alternates:
			return a.Alternates > b.Alternates
		case a.Outbound != b.Outbound:
			return !a.Outbound
		case a.RTT != b.RTT:
			return a.RTT > b.RTT
		case a.Age != b.Age:
			return a.Age > b.Age
		}
		return a.Peer < b.Peer
	})
	return cands[0].Peer, true
}

// count returns the degree, the honoured claims and the peers holding a
// slot or a link. cfg has its defaults.
func count(cfg Config, links []Link, pending []string) (degree, honoured int, held map[string]bool) {
	p := planner{cfg: cfg}
	held = map[string]bool{}
	for _, l := range p.honourClaims(links) {
		held[l.Peer] = true
		switch {
		case !l.Static:
			degree++
		case l.Claimed && !l.Outbound:
			honoured++
		}
	}
	for _, name := range pending {
		if !held[name] {
			held[name] = true
			degree++
		}
	}
	return degree, honoured, held
}
