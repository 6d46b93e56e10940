package policy

import (
	"errors"
	"strings"
	"testing"
)

const example = `
# who may reach what on this node
allow dial  from=group:ops service=ssh
deny  dial  from=mallory   service=*
allow dial  from=*         service=web,api
allow relay from=group:site-a to=group:site-a   # site-internal traffic only
`

func TestDialDecisions(t *testing.T) {
	p, err := Parse(example)
	if err != nil {
		t.Fatal(err)
	}
	ops := Subject{Name: "alice", Groups: []string{"ops"}}
	bob := Subject{Name: "bob"}
	mallory := Subject{Name: "mallory", Groups: []string{"ops"}}
	for _, c := range []struct {
		from    Subject
		service string
		allowed bool
		line    int // 0: the default decided
	}{
		{ops, "ssh", true, 3},
		{bob, "ssh", false, 0},
		{bob, "web", true, 5},
		{bob, "api", true, 5},
		{mallory, "ssh", true, 3}, // first match wins: the ops rule comes first
		{mallory, "web", false, 4},
		{bob, "db", false, 0},
	} {
		d := p.Dial(c.from, c.service)
		line := 0
		if d.Rule != nil {
			line = d.Rule.Line
		}
		if d.Allowed != c.allowed || line != c.line {
			t.Errorf("%s dials %s: allowed %v by line %d (%s), want %v by line %d", c.from.Name, c.service, d.Allowed, line, d.Reason, c.allowed, c.line)
		}
		if !strings.Contains(d.Reason, c.from.Name) || (line == 0) != strings.Contains(d.Reason, "default deny") {
			t.Errorf("reason %q does not explain the decision", d.Reason)
		}
	}
}

func TestRelayDecisionsAndDefaults(t *testing.T) {
	p, err := Parse(example)
	if err != nil {
		t.Fatal(err)
	}
	a := Subject{Name: "a1", Groups: []string{"site-a"}}
	b := Subject{Name: "b1", Groups: []string{"site-b"}}
	if d := p.Relay(a, a); !d.Allowed {
		t.Errorf("site-a to site-a: %s", d.Reason)
	}
	if d := p.Relay(a, b); d.Allowed || d.Rule != nil {
		t.Errorf("site-a to site-b: %s, want default deny", d.Reason)
	}
	dialOnly, _ := Parse("allow dial from=x service=y")
	if d := dialOnly.Relay(a, b); !d.Allowed || !strings.Contains(d.Reason, "no relay rules") {
		t.Errorf("no relay rules: %s, want allowed", d.Reason)
	}
	var none *Policy
	if d := none.Dial(b, "anything"); !d.Allowed {
		t.Errorf("nil policy: %s", d.Reason)
	}
	empty, err := Parse("# nothing\n\n")
	if err != nil || empty.Has(Dial) || empty.Has(Relay) {
		t.Fatalf("empty policy: %v", err)
	}
}

func TestSyntaxErrorsNameTheLine(t *testing.T) {
	for text, want := range map[string]string{
		"allow dial from=a\npermit dial": "line 2",
		"allow dial port=22":             "does not apply",
		"allow relay service=web":        "does not apply",
		"allow dial from=":               "selector=value",
		"allow dial from=a,,b":           "empty value",
		"allow dial from=a,*":            "stands alone",
		"allow dial from=a from=b":       "twice",
		"allow":                          "want",
		"allow teleport":                 "dial or relay",
		"allow dial " + strings.Repeat("x", MaxLineLength): "longer than",
	} {
		_, err := Parse(text)
		var se *SyntaxError
		if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%.40q): %v, want a syntax error mentioning %q", text, err, want)
		}
	}
	if _, err := Parse(strings.Repeat("allow dial\n", MaxRules+1)); !errors.Is(err, ErrSyntax) {
		t.Errorf("too many rules: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(example)
	f.Add("deny relay from=* to=group:x\nallow dial")
	f.Add("allow dial from=a,group:b service=c # x")
	f.Fuzz(func(t *testing.T, text string) {
		p, err := Parse(text)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// Every decision is explained, and only a rule or the default
		// decides.
		d := p.Dial(Subject{Name: "a", Groups: []string{"b"}}, "c")
		if d.Reason == "" || (d.Rule == nil && p.Has(Dial) && d.Allowed) {
			t.Fatalf("decision %+v", d)
		}
		if len(p.Rules()) > MaxRules {
			t.Fatalf("%d rules", len(p.Rules()))
		}
	})
}

func TestNamesGroup(t *testing.T) {
	for _, tc := range []struct {
		text        string
		dial, relay bool
	}{
		{"", false, false},
		{"allow dial from=group:ops service=ssh\n", true, false},
		{"deny relay from=* to=group:secret\n", false, true},
		{"allow relay from=group:a to=b\n", false, true},
		{"allow relay from=a to=b\nallow dial from=c service=x\n", false, false},
	} {
		p, err := Parse(tc.text)
		if err != nil {
			t.Fatal(err)
		}
		if p.NamesGroup(Dial) != tc.dial || p.NamesGroup(Relay) != tc.relay {
			t.Errorf("%q: names a group in dial %v, relay %v; want %v, %v", tc.text, p.NamesGroup(Dial), p.NamesGroup(Relay), tc.dial, tc.relay)
		}
	}
	var none *Policy
	if none.NamesGroup(Relay) {
		t.Error("no policy names a group")
	}
}
