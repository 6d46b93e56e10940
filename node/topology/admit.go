package topology

import "fmt"

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

// Admit reports whether a new link l may come up next to links and
// pending (see Slots): a static link, a link to a peer that already holds
// a slot, an incoming link claimed static while fewer than StaticIn claims
// are honoured, or a link while degree is below Max. Otherwise it returns
// the reason to give the peer, which starts with AtMaximum. Admission is
// the hard bound: Plan's drops above Max only follow a lowered Max or an
// operator's links.
func Admit(cfg Config, links []Link, pending []string, l Link) (bool, string) {
	cfg = cfg.withDefaults()
	if l.Static {
		return true, ""
	}
	degree, honoured, held := count(cfg, links, pending)
	switch {
	case held[l.Peer]:
		return true, ""
	case l.Claimed && !l.Outbound && honoured < cfg.StaticIn:
		return true, ""
	case degree < cfg.Max:
		return true, ""
	case l.Claimed && !l.Outbound && cfg.StaticIn > 0:
		return false, fmt.Sprintf("%s of %d links, and %d links static for their dialler already kept on top", AtMaximum, cfg.Max, cfg.StaticIn)
	}
	return false, fmt.Sprintf("%s of %d links", AtMaximum, cfg.Max)
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
