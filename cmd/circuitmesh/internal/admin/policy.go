package admin

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node/policy"
)

// PathPolicyCheck (GET) explains the running node's authorization
// decision for a source and a service (query from, service, group...) or,
// with to instead of service, for relaying from a source to a destination.
const PathPolicyCheck = "/v1/policy/check"

// PolicyNode is what the policy endpoint needs from the node; *node.Node
// implements it.
type PolicyNode interface {
	Policy() *policy.Policy
	PolicySubject(node string) (policy.Subject, bool)
	// RelayDecision is the decision the node makes on relaying from
	// from to to (a leaf refuses every relay); known: the groups of both
	// are known.
	RelayDecision(from, to policy.Subject, known bool) policy.Decision
}

// PolicyCheck is an explained decision.
type PolicyCheck struct {
	Kind    policy.Kind `json:"kind"`
	From    Subject     `json:"from"`
	To      *Subject    `json:"to,omitempty"` // relay
	Service string      `json:"service,omitempty"`
	Allowed bool        `json:"allowed"`
	// Line and Rule are the deciding rule; Line 0 means the default.
	Line   int    `json:"line"`
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason"`
}

// Subject is a node as a decision saw it, and where its groups came from:
// "given" (the request named them), "certificate" (the certificate that
// attested its routes, verified against the mesh CA) or "unknown" (none
// given, no certificate seen: evaluated with no groups).
type Subject struct {
	Name       string   `json:"name"`
	Groups     []string `json:"groups"`
	GroupsFrom string   `json:"groups_from"`
}

func (s *Server) handlePolicyCheck(w http.ResponseWriter, r *http.Request) {
	pn, ok := s.node.(PolicyNode)
	if !ok {
		writeError(w, fmt.Errorf("this node has no authorization policy support: %w", ErrBadRequest))
		return
	}
	q := r.URL.Query()
	from, to, service := q.Get("from"), q.Get("to"), q.Get("service")
	if from == "" || (to == "") == (service == "") {
		writeError(w, fmt.Errorf("want from and either service or to: %w", ErrBadRequest))
		return
	}
	// A name no node, group or service can have is a mistyped argument,
	// not a subject the policy denies (or, like "ssh,web", one a rule
	// would read as two services): the answer would mislead.
	for _, key := range []string{"from", "to", "group", "to-group"} {
		for _, g := range q[key] {
			if err := identity.ValidateName(g); err != nil {
				writeError(w, fmt.Errorf("%s %q: %v: %w", key, g, err, ErrBadRequest))
				return
			}
		}
	}
	if service != "" {
		if err := ValidateService(service); err != nil {
			writeError(w, fmt.Errorf("service %q: %w", service, err))
			return
		}
	}
	subject := func(name string, given []string) Subject {
		if len(given) > 0 {
			return Subject{Name: name, Groups: given, GroupsFrom: "given"}
		}
		s, known := pn.PolicySubject(name)
		out := Subject{Name: name, Groups: s.Groups, GroupsFrom: "certificate"}
		if !known {
			out.GroupsFrom = "unknown"
		}
		if out.Groups == nil {
			out.Groups = []string{}
		}
		return out
	}
	p := pn.Policy()
	res := PolicyCheck{From: subject(from, q["group"])}
	var d policy.Decision
	if service != "" {
		res.Kind, res.Service = policy.Dial, service
		d = p.Dial(policy.Subject{Name: from, Groups: res.From.Groups}, service)
	} else {
		dst := subject(to, q["to-group"])
		res.Kind, res.To = policy.Relay, &dst
		known := res.From.GroupsFrom != "unknown" && dst.GroupsFrom != "unknown"
		d = pn.RelayDecision(policy.Subject{Name: from, Groups: res.From.Groups}, policy.Subject{Name: to, Groups: dst.Groups}, known)
	}
	res.Allowed, res.Reason = d.Allowed, d.Reason
	if d.Rule != nil {
		res.Line, res.Rule = d.Rule.Line, d.Rule.Text
	}
	writeJSON(w, res)
}

// String is the decision as the CLI prints it.
func (c PolicyCheck) String() string {
	var b strings.Builder
	fmt.Fprintln(&b, c.Reason)
	sub := func(role string, s Subject) {
		groups := "no groups"
		if len(s.Groups) > 0 {
			groups = "groups " + strings.Join(s.Groups, ", ")
		}
		from := map[string]string{
			"given":       "as given",
			"certificate": "from the certificate that attested its routes",
			"unknown":     "no certificate of it seen here",
		}[s.GroupsFrom]
		fmt.Fprintf(&b, "%s %s: %s (%s)\n", role, s.Name, groups, from)
	}
	sub("source", c.From)
	if c.To != nil {
		sub("destination", *c.To)
	}
	return b.String()
}
