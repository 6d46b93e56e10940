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
// mesh CA whose groups (Subject OU values) carry terminal control
// sequences: an OSC 52 clipboard write, a CSI that clears the screen, CR,
// backspace, a right-to-left override and a zero-width space. Before,
// nodes took a verified certificate's groups without checking them as
// names, and `circuitmesh policy check m ...` on d, a neighbour, printed
// them to the terminal as they came. Now every node refuses such a
// certificate, m's own daemon at its start, and what `policy check`
// prints of a peer's groups has every non-printable rune replaced by '?'
// besides.
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
	// m's own daemon refuses the certificate at start, as every node
	// refuses it from a peer (identity.TestGroupsAreSignedIntoTheCertificate).
	code, out := l.exitCode("run", "--data-dir", filepath.Join(l.dir, "m"), "--listen", "127.0.0.1:0")
	if code == 0 || !strings.Contains(out, "group") || !strings.Contains(out, "invalid name") {
		t.Errorf("a daemon with a certificate whose groups are no names exited %d:\n%s", code, out)
	}
	for _, bad := range []string{"\x1b", "\x07", "\r", "\b", "\u202e", "\u200b"} {
		if strings.Contains(out, bad) {
			t.Errorf("the refusal printed %+q from the certificate:\n%+q", bad, out)
		}
	}
	if got := termSafeLines("ops\x1b]52;c;cHduZWQ=\x07\n\u202eevil"); got != "ops?]52;c;cHduZWQ=?\n?evil" {
		t.Errorf("termSafeLines kept controls: %+q", got)
	}
}
