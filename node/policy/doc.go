// Package policy is the authorization policy of a node: which sources may
// open which services on it, and which circuits it relays. It is a pure
// evaluator (no I/O, no clocks): rules in, decisions out, each decision
// naming the rule that made it so an operator can see why.
//
// A policy is text, one rule a line ('#' starts a comment):
//
//	allow dial  from=group:ops service=ssh
//	allow dial  from=*         service=web,api
//	deny  relay from=mallory   to=*
//	allow relay from=group:site-a to=group:site-a
//
// A rule is "allow" or "deny", a kind ("dial": circuits ending at this
// node; "relay": circuits this node forwards) and selectors. from= and to=
// take node names, group:NAME (a group signed into the node's
// certificate) or *, comma-separated; service= takes service names or *. A
// selector left out matches anything. A service name holds no ',', '#' or
// '*' (circuit.ValidateService), so every service can be named. A value
// no name could match is a syntax error, not a rule that never applies: a
// node name or group NAME must pass identity.ValidateName (lower case:
// "from=Mallory" is refused) and a service circuit.ValidateService; the
// *SyntaxError names the line and wraps identity.ErrInvalidName or
// circuit.ErrInvalidService.
//
// Evaluation: the first rule of the circuit's kind whose selectors all
// match decides. When the policy has no rule of that kind, everything of
// that kind is allowed (the default without a policy); when it has at
// least one and none matches, the circuit is denied (default deny, as in
// Nebula and Tailscale ACLs). Decision.Rule names the deciding rule.
//
// The caller supplies the subjects: at the destination the source is the
// node authenticated end to end; at a relay the source and destination are
// what the circuit's header claims, with the groups of their certificates
// where the relay knows them.
package policy
