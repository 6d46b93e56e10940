package main

import (
	"crypto/rand"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// TestAttackCertificateGroupsReachTerminal: m holds a certificate of the
// mesh CA whose groups (Subject OU values, which nodes take from a
// verified certificate without checking them as names) carry terminal
// control sequences: an OSC 52 clipboard write, a CSI that clears the
// screen, CR, backspace, a right-to-left override and a zero-width
// space. `circuitmesh policy check m ...` on d, a neighbour, prints the
// groups d verified for m: none of those runes may reach the terminal.
func TestAttackCertificateGroupsReachTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs daemons")
	}
	l := newLab(t, "e2e")
	groups := []string{"ops\x1b]52;c;cHduZWQ=\x07", "\x1b[2J\x1b[Hclear", "a\rb\bc", "\u202eevil\u200b"}
	ca, err := identity.LoadCA(l.ca)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.Issue("m", 0)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := *id.Cert
	tmpl.RawSubject = nil
	tmpl.Subject.OrganizationalUnit = groups
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca.Cert, id.Key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	if id.Cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	if err := identity.SaveIdentity(filepath.Join(l.dir, "m"), id, false); err != nil {
		t.Fatal(err)
	}
	d := l.start("d", "")
	l.start("m", "", "--link", d.addr)
	d.waitRoute(t, "m", anyRoute)

	var out, stderr string
	waitUntil(t, "d to hold m's groups from its certificate", func() bool {
		_, out, stderr = d.run3("policy", "check", "m", "echo")
		return strings.Contains(out, "from the certificate")
	})
	for _, bad := range []string{"\x1b", "\x07", "\r", "\b", "\u202e", "\u200b"} {
		if strings.Contains(out+stderr, bad) {
			t.Errorf("policy check m echo printed %+q from m's certificate:\n%+q", bad, out+stderr)
		}
	}
	if !strings.Contains(out, "ops?]52;c;cHduZWQ=?") {
		t.Errorf("policy check m echo does not show m's first group with '?' for its controls:\n%+q", out)
	}
}
