package node

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// newCAIdentity makes a CA and the identity of node name it issues.
func newCAIdentity(t *testing.T, name string) (*identity.CA, *identity.Identity) {
	t.Helper()
	ca, err := identity.NewCA("test", 0)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.Issue(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ca, id
}

// caCertValid re-signs ca's certificate, same key and names, valid from
// notBefore to notAfter: what an operator holds after renewing the CA
// certificate with the wrong dates, or copying in an old one.
func caCertValid(t *testing.T, ca *identity.CA, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	tmpl := *ca.Cert
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = notBefore, notAfter
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, ca.Key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeCACert(t *testing.T, dir string, c *x509.Certificate) {
	t.Helper()
	tmp := filepath.Join(dir, ".ca.crt.new")
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, identity.CACertFile)); err != nil {
		t.Fatal(err)
	}
}

// A node refuses to start when its identity is not valid now, and the CA
// certificate it checks every peer against is part of it: before, a node
// started with an expired or not yet valid CA certificate, then refused
// every link, its peers' and its own certificate alike.
func TestNewRefusesExpiredCACertificate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to time.Duration
	}{
		{"expired", -48 * time.Hour, -time.Hour},
		{"not yet valid", time.Hour, 48 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, id := newCAIdentity(t, "a")
			id.CA = caCertValid(t, ca, time.Now().Add(tc.from), time.Now().Add(tc.to))
			if _, own := id.VerifyPeer([][]byte{id.Cert.Raw}, time.Now()); own == nil {
				t.Fatal("the identity verifies; the test is wrong")
			}
			n, err := New(Config{Identity: id, Logger: testLogger(t)})
			if err == nil {
				n.Close()
				t.Fatalf("New accepted an identity whose CA certificate is valid from %s to %s (now %s): "+
					"the node starts and can link to no one; want identity.ErrExpired",
					id.CA.NotBefore.UTC().Format(time.RFC3339), id.CA.NotAfter.UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339))
			}
			if !errors.Is(err, identity.ErrExpired) {
				t.Fatalf("New: %v, want identity.ErrExpired", err)
			}
		})
	}
}

// A reload of an expired identity is refused and the current one kept
// (docs/SECURITY.md, "Rotating a node certificate"). Before, a ca.crt
// replaced by an expired CA certificate of the same key was applied: the
// node kept its live link until the old CA's expiry, but refused every
// new link, with nothing said at the reload.
func TestReloadRefusesExpiredCACertificate(t *testing.T) {
	c := newCluster(t, true)
	dir := t.TempDir()
	bid, err := c.ca.Issue("b", 0)
	if err != nil {
		t.Fatal(err)
	}
	c.identityFromFiles(t, "b", bid, dir)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	b := c.nodes["b"]
	before := b.identity().CA

	writeCACert(t, dir, caCertValid(t, c.ca, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)))
	err = b.ReloadIdentity()
	after := b.identity().CA
	if err == nil || !after.Equal(before) {
		t.Fatalf("reload of an expired CA certificate: err=%v, CA in force valid until %s (was %s); "+
			"want the reload refused (identity.ErrExpired) and the current CA kept",
			err, after.NotAfter.UTC().Format(time.RFC3339), before.NotAfter.UTC().Format(time.RFC3339))
	}
}

// An identity without a CA certificate (and not insecure) is taken by New
// as before, its links failing their checks: the check of the CA
// certificate's dates dereferenced it and panicked.
func TestNewTakesIdentityWithoutCA(t *testing.T) {
	_, id := newCAIdentity(t, "a")
	id.CA = nil
	n, err := New(Config{Identity: id, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	n.Close()
}
