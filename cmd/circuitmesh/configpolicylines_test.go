package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigValueWithALineBreakRefused: decisions name the config file's
// line numbers for `policy =` lines (docs/SECURITY.md: "Line numbers are
// those of the policy file, or of the config file for policy = lines").
// Before, a quoted value holding an escaped newline became two rules on
// one line of the file, and every later rule was named by the line after
// its own ("rule at line 4" for the deny on line 3). Now such a value is
// refused, naming its line.
func TestConfigValueWithALineBreakRefused(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "d.conf")
	writeMode(t, conf, "listen = 127.0.0.1:0\n"+
		`policy = "allow dial from=a service=ssh\nallow dial from=b service=ssh"`+"\n"+
		"policy = deny dial from=* service=ssh\n", 0o600)
	p, err := policySource{config: conf}.load()
	if err == nil || !strings.Contains(err.Error(), conf+":2:") || !strings.Contains(err.Error(), "line break") {
		var rules int
		if p != nil {
			rules = len(p.Rules())
		}
		t.Fatalf("config file with a policy value holding a newline: load: %v (%d rules from 2 policy lines); want it refused at line 2", err, rules)
	}
}
