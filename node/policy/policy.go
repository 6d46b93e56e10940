package policy

import (
	"bufio"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

// Limits on a policy's text, so a bad file cannot exhaust memory.
const (
	MaxRules      = 4096
	MaxLineLength = 4096
	MaxValues     = 256 // values in one selector
)

// ErrSyntax: the policy text could not be parsed. Parse returns a
// *SyntaxError wrapping it.
var ErrSyntax = errors.New("policy syntax error")

// SyntaxError names the line of a policy that could not be parsed.
type SyntaxError struct {
	Line int
	Msg  string
	// Err is the cause, if any. For a selector value no name can match
	// it wraps identity.ErrInvalidName (from=, to=) or
	// circuit.ErrInvalidService (service=).
	Err error
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("policy line %d: %s", e.Line, e.Msg) }

// Unwrap returns ErrSyntax and Err.
func (e *SyntaxError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrSyntax}
	}
	return []error{ErrSyntax, e.Err}
}

// Kind is what a rule governs.
type Kind string

// Rule kinds.
const (
	Dial  Kind = "dial"  // circuits ending at this node
	Relay Kind = "relay" // circuits this node forwards
)

// Subject is a node as the policy sees it.
type Subject struct {
	Name   string
	Groups []string
}

// Rule is one parsed line.
type Rule struct {
	Line    int    // 1-based line in the policy text
	Text    string // the line as written, trimmed
	Allow   bool
	Kind    Kind
	From    []string // nil: any
	To      []string // relay only; nil: any
	Service []string // dial only; nil: any
}

// Policy is a parsed, immutable policy. The zero value (and nil) allows
// everything.
type Policy struct {
	rules  []Rule
	counts map[Kind]int
}

// Decision is the outcome of an evaluation.
type Decision struct {
	Allowed bool
	// Rule is the rule that decided; nil when the default did.
	Rule *Rule
	// Reason explains the decision in one line.
	Reason string
}

// Parse reads a policy. Errors are *SyntaxError values naming the line.
func Parse(text string) (*Policy, error) {
	p := &Policy{counts: map[Kind]int{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 1024), MaxLineLength+1)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if len(p.rules) == MaxRules {
			return nil, &SyntaxError{Line: line, Msg: fmt.Sprintf("more than %d rules", MaxRules)}
		}
		r, err := parseRule(s)
		if err != nil {
			return nil, &SyntaxError{Line: line, Msg: err.Error(), Err: err}
		}
		r.Line = line
		p.rules = append(p.rules, r)
		p.counts[r.Kind]++
	}
	if err := sc.Err(); err != nil {
		return nil, &SyntaxError{Line: line + 1, Msg: fmt.Sprintf("line longer than %d bytes", MaxLineLength)}
	}
	return p, nil
}

func parseRule(s string) (Rule, error) {
	f := strings.Fields(s)
	if len(f) < 2 {
		return Rule{}, fmt.Errorf("want \"allow|deny dial|relay selector=value...\", got %q", s)
	}
	r := Rule{Text: s}
	switch f[0] {
	case "allow":
		r.Allow = true
	case "deny":
	default:
		return Rule{}, fmt.Errorf("%q: want allow or deny", f[0])
	}
	switch Kind(f[1]) {
	case Dial, Relay:
		r.Kind = Kind(f[1])
	default:
		return Rule{}, fmt.Errorf("%q: want dial or relay", f[1])
	}
	seen := map[string]bool{}
	for _, sel := range f[2:] {
		key, val, ok := strings.Cut(sel, "=")
		if !ok || val == "" {
			return Rule{}, fmt.Errorf("%q: want selector=value", sel)
		}
		if seen[key] {
			return Rule{}, fmt.Errorf("selector %s given twice", key)
		}
		seen[key] = true
		vals := strings.Split(val, ",")
		if len(vals) > MaxValues {
			return Rule{}, fmt.Errorf("selector %s has more than %d values", key, MaxValues)
		}
		for _, v := range vals {
			if v == "" {
				return Rule{}, fmt.Errorf("selector %s has an empty value", key)
			}
			if v == "*" {
				continue
			}
			if err := checkValue(key, v); err != nil {
				return Rule{}, fmt.Errorf("selector %s: value %q can never match: %w", key, v, err)
			}
		}
		if slices.Contains(vals, "*") {
			if len(vals) > 1 {
				return Rule{}, fmt.Errorf("selector %s: * stands alone", key)
			}
			vals = nil // any
		}
		switch {
		case key == "from":
			r.From = vals
		case key == "to" && r.Kind == Relay:
			r.To = vals
		case key == "service" && r.Kind == Dial:
			r.Service = vals
		default:
			return Rule{}, fmt.Errorf("selector %q does not apply to %s rules (dial: from, service; relay: from, to)", key, r.Kind)
		}
	}
	return r, nil
}

// checkValue checks a selector's value against the rule of the names it
// is matched with, so that a misspelt value, which would never match, is
// an error rather than a rule that silently does nothing: a node name or
// group:NAME (identity.ValidateName, the rule of node names and of the
// groups a CA signs) for from= and to=, a service name
// (circuit.ValidateService) for service=. Other keys are left to the
// caller.
func checkValue(key, v string) error {
	switch key {
	case "from", "to":
		if g, ok := strings.CutPrefix(v, "group:"); ok {
			if err := identity.ValidateName(g); err != nil {
				return fmt.Errorf("group: %w", err)
			}
			return nil
		}
		return identity.ValidateName(v)
	case "service":
		return circuit.ValidateService(v)
	}
	return nil
}

// Rules returns the parsed rules in order.
func (p *Policy) Rules() []Rule {
	if p == nil {
		return nil
	}
	return slices.Clone(p.rules)
}

// Has reports whether the policy has rules of kind k (and so denies by
// default what none of them allows).
func (p *Policy) Has(k Kind) bool { return p != nil && p.counts[k] > 0 }

// Dial decides whether from may open service on this node.
func (p *Policy) Dial(from Subject, service string) Decision {
	return p.decide(Dial, func(r *Rule) bool {
		return matchSubject(r.From, from) && matchName(r.Service, service)
	}, from.Name+" to dial "+service)
}

// NamesGroup reports whether a rule of kind k selects a subject by group.
func (p *Policy) NamesGroup(k Kind) bool {
	if p == nil {
		return false
	}
	for i := range p.rules {
		r := &p.rules[i]
		if r.Kind != k {
			continue
		}
		for _, v := range slices.Concat(r.From, r.To) {
			if strings.HasPrefix(v, "group:") {
				return true
			}
		}
	}
	return false
}

// Relay decides whether this node forwards a circuit from from to to.
func (p *Policy) Relay(from, to Subject) Decision {
	return p.decide(Relay, func(r *Rule) bool {
		return matchSubject(r.From, from) && matchSubject(r.To, to)
	}, "relaying "+from.Name+" to "+to.Name)
}

// decide builds its reasons by concatenation, not fmt: it runs on every
// relayed and accepted open.
func (p *Policy) decide(k Kind, match func(*Rule) bool, what string) Decision {
	if !p.Has(k) {
		return Decision{Allowed: true, Reason: "allowed: " + what + " (no " + string(k) + " rules: everything allowed)"}
	}
	for i := range p.rules {
		r := &p.rules[i]
		if r.Kind != k || !match(r) {
			continue
		}
		verdict := "denied"
		if r.Allow {
			verdict = "allowed"
		}
		return Decision{Allowed: r.Allow, Rule: r, Reason: verdict + ": " + what + " by rule at line " + strconv.Itoa(r.Line) + " (" + r.Text + ")"}
	}
	return Decision{Reason: "denied: " + what + " (no " + string(k) + " rule matches: default deny)"}
}

func matchSubject(sel []string, s Subject) bool {
	if sel == nil {
		return true
	}
	for _, v := range sel {
		if g, ok := strings.CutPrefix(v, "group:"); ok {
			if slices.Contains(s.Groups, g) {
				return true
			}
		} else if v == s.Name {
			return true
		}
	}
	return false
}

func matchName(sel []string, name string) bool {
	return sel == nil || slices.Contains(sel, name)
}
