package node

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/node/policy"
)

// authz applies the node's authorization policy (package node/policy) to
// circuits: dial rules at the destination, relay rules at each relay. It
// remembers the subjects of every live circuit it allowed so that a new
// policy can end the ones it no longer allows.
type authz struct {
	pol  atomic.Pointer[policy.Policy]
	mu   sync.Mutex
	live map[*policed]struct{} // bounded by the node's circuit limits
}

// policed is a live circuit as the policy saw it when it was allowed.
type policed struct {
	kind     policy.Kind
	from, to policy.Subject // to: relay only
	known    bool           // the groups of the subjects are known (relaySubjects, dialSource)
	service  string         // dial only
	deny     func()         // resets the circuit with CloseDenied
}

func newAuthz(p *policy.Policy) *authz {
	a := &authz{live: make(map[*policed]struct{})}
	a.pol.Store(p)
	return a
}

// decide decides p under pol, as when it opened: a relayed circuit as
// relayUnder does, so that a new policy whose relay rules select by group
// ends one whose groups this relay cannot know, as it refuses a new one.
func (p *policed) decide(pol *policy.Policy) policy.Decision {
	if p.kind == policy.Relay {
		return relayUnder(pol, p.from, p.to, p.known)
	}
	return dialUnder(pol, p.from, p.known, p.service)
}

// watch decides p with the policy in force and, when allowed, registers
// it until forget. Deciding under the lock that SetPolicy holds means a
// circuit is either decided by the new policy here or rechecked by
// SetPolicy, never missed.
func (a *authz) watch(p *policed) policy.Decision {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := p.decide(a.pol.Load())
	if d.Allowed {
		a.live[p] = struct{}{}
	}
	return d
}

// forget unregisters p (nil or unregistered: nothing).
func (a *authz) forget(p *policed) {
	if p == nil {
		return
	}
	a.mu.Lock()
	delete(a.live, p)
	a.mu.Unlock()
}

// Policy is the authorization policy in force (nil: none, everything
// allowed).
func (n *Node) Policy() *policy.Policy { return n.authz.pol.Load() }

// SetPolicy replaces the authorization policy (nil removes it: everything
// allowed). Circuits the new policy still allows stay open; circuits it no
// longer allows (by the same subjects the old policy allowed them on) are
// reset with close code circuit.CloseDenied, which both ends see as an
// error matching circuit.ErrRefusedByPolicy. It returns how many were
// reset.
func (n *Node) SetPolicy(p *policy.Policy) int {
	a := n.authz
	a.mu.Lock()
	a.pol.Store(p)
	var denied []*policed
	for c := range a.live {
		if d := c.decide(p); !d.Allowed {
			if len(denied) < maxDeniedLogged {
				n.log.Info("closing a circuit the new policy denies", "reason", d.Reason)
			}
			denied = append(denied, c)
			delete(a.live, c)
		}
	}
	a.mu.Unlock()
	for _, c := range denied {
		c.deny()
	}
	if !p.Has(policy.Dial) && (n.cfg.Leaf || !p.Has(policy.Relay)) {
		n.log.Warn("authorization policy replaced by none: every member of the mesh may open every service on this node"+n.relayClause(),
			"rules", len(p.Rules()), "relay", n.relayDefault(p), "circuits_closed", len(denied))
		return len(denied)
	}
	n.log.Info("authorization policy replaced", "rules", len(p.Rules()), "dial", policyDefault(p, policy.Dial),
		"relay", n.relayDefault(p), "circuits_closed", len(denied))
	return len(denied)
}

// ReloadIdentityAndPolicy is ReloadIdentity followed by SetPolicy(p),
// all or nothing: p is applied only once the identity files were read and
// the node switched to them. When the identity is refused (unreadable or
// unsafe files, an expired certificate, another name), neither the
// identity nor the policy changes, and the error says why (it matches
// ErrNoIdentityFiles on a node without identity files, whose caller may
// then apply p alone). It returns how many circuits the new policy closed.
func (n *Node) ReloadIdentityAndPolicy(p *policy.Policy) (closed int, err error) {
	// The policy is set under the lock the identity was read and applied
	// under.
	err = n.reloadIdentity(func() { closed = n.SetPolicy(p) })
	return closed, err
}

// maxDeniedLogged bounds the circuits SetPolicy logs one by one; the
// summary line counts them all.
const maxDeniedLogged = 16

// policyDefault says what a policy does with what no rule matches.
func policyDefault(p *policy.Policy, k policy.Kind) string {
	if p.Has(k) {
		return "default deny"
	}
	return "allow all (no " + string(k) + " rules)"
}

// relayDefault is policyDefault for relaying on this node: none on a
// leaf, which relays nothing whatever its rules.
func (n *Node) relayDefault(p *policy.Policy) string {
	if n.cfg.Leaf {
		return "none (leaf)"
	}
	return policyDefault(p, policy.Relay)
}

// relayClause ends the warning about a missing policy: a leaf relays
// nothing, so members may not relay through it.
func (n *Node) relayClause() string {
	if n.cfg.Leaf {
		return " (it relays nothing: it is a leaf)"
	}
	return " and relay through it"
}

// logPolicy states the policy at start: a warning when there is none.
func (n *Node) logPolicy() {
	p := n.Policy()
	if !p.Has(policy.Dial) && (n.cfg.Leaf || !p.Has(policy.Relay)) {
		n.log.Warn("no authorization policy: every member of the mesh may open every service on this node"+n.relayClause()+"; set a policy (Config.Policy, --policy-file) to restrict",
			"relay", n.relayDefault(p))
		return
	}
	n.log.Info("authorization policy", "rules", len(p.Rules()), "dial", policyDefault(p, policy.Dial), "relay", n.relayDefault(p))
}

// subjectOf is node as the policy sees it from here: its name and the
// groups of the certificate that last attested its routes (verified
// against the mesh CA), or this node's own groups. known is false when this
// node holds no verified groups of it.
func (n *Node) subjectOf(node string) (s policy.Subject, known bool) {
	groups, ok := n.router.cert.groupsOf(node)
	return policy.Subject{Name: node, Groups: groups}, ok
}

// PolicySubject is node as the policy sees it from here, as a relay's
// decision and `circuitmesh policy check` take it: subjectOf, and when
// the groups verified for node were dropped (a full cache, a reload that
// changed the CA), the attestation routing holds for node verified again
// against the current CA, which records its groups again. known is false
// when this node holds no attestation of it that verifies, so its groups
// are unknown.
func (n *Node) PolicySubject(node string) (s policy.Subject, known bool) {
	if s, ok := n.subjectOf(node); ok {
		return s, true
	}
	n.router.mu.Lock()
	seq, att, held := n.router.eng.Attestation(node)
	n.router.mu.Unlock()
	if held && n.router.cert.Verify(node, n.router.cert.Epoch(att), seq, att) == nil {
		return n.subjectOf(node)
	}
	return policy.Subject{Name: node}, false
}

// precheckDial decides a circuit to this node before its source is
// authenticated, on the source the header claims and the groups of that
// name's certificate. Denying on a claim hurts only the claimer, so a
// denial is final; an allowance is final only for an unsealed circuit,
// whose source cannot be authenticated better (see docs/SECURITY.md).
// It returns ok when the circuit may go on.
func (n *Node) precheckDial(o *circuit.Open) (policy.Decision, bool) {
	p := n.Policy()
	if !p.Has(policy.Dial) {
		return policy.Decision{Allowed: true}, true
	}
	var from policy.Subject
	var known bool
	if o.Flags&circuit.FlagSealed != 0 {
		if from, known = n.subjectOf(o.Source); !known {
			return policy.Decision{Allowed: true}, true // the groups come with the handshake
		}
	} else {
		from, known = n.PolicySubject(o.Source)
	}
	d := dialUnder(p, from, known, o.Service)
	return d, d.Allowed
}

// dialUnder is the decision of policy p on from opening service here.
// known says whether from's groups are known: when they are not (an
// unsealed circuit from a name whose certificate this node cannot
// verify), a policy whose dial rules select by group denies, since from
// might be in a group a deny rule names.
func dialUnder(p *policy.Policy, from policy.Subject, known bool, service string) policy.Decision {
	if !known && p.NamesGroup(policy.Dial) {
		return policy.Decision{Reason: "denied: " + from.Name + " to dial " + service + " (groups unknown here, and dial rules select by group)"}
	}
	return p.Dial(from, service)
}

// claimDenied is the reason a refusal of precheckDial's denial d gives:
// the rule's text only when the link proved the source (hop 0). A
// neighbour that claims to relay for a source (hop > 0) could claim any
// name, and would read this node's rules about others: it gets the
// denial without them.
func claimDenied(o *circuit.Open, d policy.Decision) string {
	if o.Hop == 0 {
		return d.Reason
	}
	return fmt.Sprintf("denied by the policy of %s", o.Dest)
}

// relaySubjects are the source and destination of a relayed circuit as
// this relay can know them. A relay sees only the header: the destination
// is where the circuit goes, but the source is what the previous hop
// claims (proven only when that hop is the source itself, hop 0). The
// groups of both are those of the certificates that attested their routes;
// known is false when the groups of either are unknown.
func (n *Node) relaySubjects(o *circuit.Open) (from, to policy.Subject, known bool) {
	from, fromKnown := n.PolicySubject(o.Source)
	to, toKnown := n.PolicySubject(o.Dest)
	return from, to, fromKnown && toKnown
}

// relayDecision decides a circuit this node would relay (see
// RelayDecision), and returns it as the policy sees it, to be decided
// again under a new one (authz.watch).
func (n *Node) relayDecision(o *circuit.Open) (*policed, policy.Decision) {
	from, to, known := n.relaySubjects(o)
	return &policed{kind: policy.Relay, from: from, to: to, known: known}, n.RelayDecision(from, to, known)
}

// RelayDecision is the decision this node makes on relaying a circuit
// from the node from to the node to, with its explanation: what the relay
// path applies and `circuitmesh policy check --relay` reports. A leaf
// (Config.Leaf) refuses every relay, whatever its policy. known says
// whether the groups of both subjects are known (from certificates that
// attested their routes, or given): when they are not, a policy whose
// relay rules select by group denies, since either might be in a group a
// deny rule names. Otherwise the policy's relay rules decide.
func (n *Node) RelayDecision(from, to policy.Subject, known bool) policy.Decision {
	if n.cfg.Leaf {
		return policy.Decision{Reason: fmt.Sprintf("denied: relaying %s to %s (%s)", from.Name, to.Name, n.leafRefusal())}
	}
	return relayUnder(n.Policy(), from, to, known)
}

// relayUnder is RelayDecision of a router under the policy p.
func relayUnder(p *policy.Policy, from, to policy.Subject, known bool) policy.Decision {
	if !known && p.NamesGroup(policy.Relay) {
		return policy.Decision{Reason: fmt.Sprintf("denied: relaying %s to %s (groups unknown here, and relay rules select by group)", from.Name, to.Name)}
	}
	return p.Relay(from, to)
}

// leafRefusal is why a leaf refuses a circuit it would relay.
func (n *Node) leafRefusal() string {
	return fmt.Sprintf("%s is a leaf and does not relay", n.cfg.Name)
}

// dialSource is the source of a circuit to this node as the policy sees
// it: authenticated by the end-to-end handshake with the groups of its
// verified certificate, or, unsealed (E2EOff), the source the header
// claims (proven by the link only at hop 0) with the groups of the
// certificate that attested its routes (PolicySubject: known is false
// when no attestation of it verifies).
func (n *Node) dialSource(o *circuit.Open, resp *seal.Responder) (s policy.Subject, known bool) {
	if resp != nil {
		return policy.Subject{Name: o.Source, Groups: resp.PeerGroups()}, true
	}
	return n.PolicySubject(o.Source)
}

// policeDial decides a circuit accepted here, now that its source is
// authenticated, and registers it. A denied circuit is refused and false
// returned: that happens only when the source could not be decided before
// the Accepted result went out (full handshake with a source whose
// certificate this node had not seen, or a policy that changed meanwhile).
// The reason, naming the rule, goes to the caller in a sealed refusal
// record (circuit.Conn.Deny); an unsealed circuit is reset with
// CloseDenied.
func (n *Node) policeDial(tc *trackedConn, o *circuit.Open, resp *seal.Responder) bool {
	from, known := n.dialSource(o, resp)
	p := &policed{kind: policy.Dial, from: from, known: known, service: o.Service, deny: tc.deny}
	tc.police.Store(p)
	if d := n.authz.watch(p); !d.Allowed {
		// One line per source a minute, with the node's count: the
		// source opens as many as it likes.
		total := n.limits.dialDenied.Add(1)
		n.limits.floods.Warn("denied:"+o.Source, "closed a circuit its authenticated source may not open",
			"source", o.Source, "service", o.Service, "reason", d.Reason, "node_denied_total", total)
		tc.Conn.Deny(d.Reason)
		tc.finish("denied", circuit.ErrRefusedByPolicy)
		return false
	}
	return true
}

// deny resets a delivered circuit the policy does not allow. Abort, not
// Reset: the circuit's owner did not close it, so its pending and later
// Reads and Writes fail with an error matching circuit.ErrRefusedByPolicy
// (what the other end reads), not net.ErrClosed.
func (c *trackedConn) deny() {
	c.Conn.Abort(circuit.CloseDenied)
	c.finish("denied", circuit.ErrRefusedByPolicy)
}
