package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newCA(t testing.TB, mesh string) *CA {
	t.Helper()
	ca, err := NewCA(mesh, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t testing.TB, ca *CA, node string) *Identity {
	t.Helper()
	id, err := ca.Issue(node, 0)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestValidateName(t *testing.T) {
	good := []string{"a", "0", "node-1", "a.b_c-d", strings.Repeat("x", 63)}
	bad := []string{"", "A", "-a", ".a", "_a", "a b", "a/b", "é", strings.Repeat("x", 64)}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", n, err)
		}
	}
	for _, n := range bad {
		if err := ValidateName(n); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName", n, err)
		}
	}
	ca := newCA(t, "prod")
	if _, err := ca.Issue("Bad Name", 0); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Issue with bad name: %v, want ErrInvalidName", err)
	}
	if _, err := NewCA("PROD", 0); !errors.Is(err, ErrInvalidName) {
		t.Errorf("NewCA with bad mesh: %v, want ErrInvalidName", err)
	}
}

func TestCertificatesCarryNames(t *testing.T) {
	ca := newCA(t, "prod")
	id := issue(t, ca, "node-a")
	if id.Cert.Subject.CommonName != "node-a" {
		t.Errorf("CN = %q", id.Cert.Subject.CommonName)
	}
	if len(id.Cert.URIs) != 1 || id.Cert.URIs[0].String() != "circuitmesh://prod/node-a" {
		t.Errorf("URIs = %v", id.Cert.URIs)
	}
	if len(ca.Cert.URIs) != 1 || ca.Cert.URIs[0].String() != "circuitmesh://prod" || !ca.Cert.IsCA {
		t.Errorf("CA URIs = %v, IsCA = %v", ca.Cert.URIs, ca.Cert.IsCA)
	}
	if d := time.Until(id.Cert.NotAfter); d < DefaultNodeValidity-time.Hour || d > DefaultNodeValidity {
		t.Errorf("default node validity left %v", d)
	}
	if id.Node != "node-a" || id.Mesh != "prod" || id.CA != ca.Cert || id.Insecure {
		t.Errorf("identity = %+v", id)
	}
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s mode = %v, want %v", path, got, want)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ids")
	ca := newCA(t, "prod")
	if err := SaveCA(dir, ca, false); err != nil {
		t.Fatal(err)
	}
	id := issue(t, ca, "b")
	// Saving next to the CA works: ca.crt is identical.
	if err := SaveIdentity(dir, id, false); err != nil {
		t.Fatal(err)
	}
	assertMode(t, dir, 0o700)
	assertMode(t, filepath.Join(dir, CAKeyFile), 0o600)
	assertMode(t, filepath.Join(dir, KeyFile), 0o600)
	assertMode(t, filepath.Join(dir, CACertFile), 0o644)
	assertMode(t, filepath.Join(dir, CertFile), 0o644)

	ca2, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ca2.Mesh != "prod" || !ca2.Cert.Equal(ca.Cert) || !ca2.Key.Equal(ca.Key) {
		t.Errorf("loaded CA differs: mesh %q", ca2.Mesh)
	}
	id2, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id2.Node != "b" || id2.Mesh != "prod" || !id2.Cert.Equal(id.Cert) || !id2.Key.Equal(id.Key) || !id2.CA.Equal(ca.Cert) {
		t.Errorf("loaded identity differs: %+v", id2)
	}
	// A loaded CA still issues certificates its nodes trust.
	c := issue(t, ca2, "c")
	if p, err := id2.VerifyPeer([][]byte{c.Cert.Raw}, time.Now()); err != nil || p.Node != "c" {
		t.Errorf("verify cert from loaded CA: %v, %+v", err, p)
	}
}

func TestSaveRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "prod")
	if err := SaveCA(dir, ca, false); err != nil {
		t.Fatal(err)
	}
	keyBefore, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	other := newCA(t, "prod")
	if err := SaveCA(dir, other, false); !errors.Is(err, ErrExists) {
		t.Fatalf("SaveCA over existing: %v, want ErrExists", err)
	}
	if keyAfter, _ := os.ReadFile(filepath.Join(dir, CAKeyFile)); !bytes.Equal(keyBefore, keyAfter) {
		t.Fatal("refused SaveCA changed the key")
	}
	// A node of another CA cannot be saved over this ca.crt either.
	if err := SaveIdentity(dir, issue(t, other, "b"), false); !errors.Is(err, ErrExists) {
		t.Fatalf("SaveIdentity with another ca.crt: %v, want ErrExists", err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("refused SaveIdentity wrote node.key: %v", err)
	}
	if err := SaveCA(dir, other, true); err != nil {
		t.Fatal(err)
	}
	got, err := LoadCA(dir)
	if err != nil || !got.Key.Equal(other.Key) {
		t.Fatalf("forced SaveCA did not replace the key: %v", err)
	}
	assertMode(t, filepath.Join(dir, CAKeyFile), 0o600)
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadDir(dir)
	if !errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), filepath.Join(dir, CertFile)) {
		t.Errorf("LoadDir(empty) = %v, want ErrNoIdentity naming node.crt", err)
	}
	if _, err := LoadCA(dir); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("LoadCA(empty) = %v, want ErrNoIdentity", err)
	}
	ca := newCA(t, "prod")
	a, b := issue(t, ca, "a"), issue(t, ca, "b")
	if err := SaveIdentity(dir, a, false); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, caPEM := encodeCert(a.Cert), mustKey(t, b), encodeCert(ca.Cert)
	if _, err := ParseIdentity(certPEM, keyPEM, caPEM); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("cert with other key: %v, want ErrKeyMismatch", err)
	}
	otherCA := newCA(t, "prod")
	if _, err := ParseIdentity(certPEM, mustKey(t, a), encodeCert(otherCA.Cert)); !errors.Is(err, ErrUntrusted) {
		t.Errorf("cert with other CA: %v, want ErrUntrusted", err)
	}
	if _, err := ParseIdentity([]byte("junk"), mustKey(t, a), caPEM); !errors.Is(err, ErrMalformed) {
		t.Errorf("junk cert: %v, want ErrMalformed", err)
	}
	if err := os.Remove(filepath.Join(dir, KeyFile)); err != nil {
		t.Fatal(err)
	}
	_, err = LoadDir(dir)
	if !errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), KeyFile) {
		t.Errorf("LoadDir without key = %v, want ErrNoIdentity naming node.key", err)
	}
}

func mustKey(t *testing.T, id *Identity) []byte {
	t.Helper()
	k, err := encodeKey(id.Key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVerifyPeer(t *testing.T) {
	now := time.Now()
	ca := newCA(t, "prod")
	self := issue(t, ca, "a")
	b := issue(t, ca, "b")
	otherCA, err := NewCA("other-ca", 0)
	if err != nil {
		t.Fatal(err)
	}
	foreign := issue(t, otherCA, "b")
	expired, err := ca.IssueAt("b", now.Add(-48*time.Hour), now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	future, err := ca.IssueAt("b", now.Add(time.Hour), now.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// Same CA key, but the certificate names another mesh.
	otherMesh := issue(t, &CA{Mesh: "staging", Cert: ca.Cert, Key: ca.Key}, "b")

	p, err := self.VerifyPeer([][]byte{b.Cert.Raw}, now)
	if err != nil || p.Node != "b" || p.Mesh != "prod" || !p.Cert.Equal(b.Cert) {
		t.Fatalf("VerifyPeer(good) = %+v, %v", p, err)
	}
	if _, err := self.VerifyPeer([][]byte{self.Cert.Raw}, now); err != nil {
		t.Fatalf("own certificate does not verify: %v", err)
	}

	cases := []struct {
		name     string
		raw      [][]byte
		want     error
		contains string
	}{
		{"other CA", [][]byte{foreign.Cert.Raw}, ErrUntrusted,
			`peer certificate for "b" is not signed by the CA of mesh "prod" (signed by "CN=other-ca mesh CA,O=other-ca", key `},
		{"expired", [][]byte{expired.Cert.Raw}, ErrExpired, `peer certificate for "b" expired at`},
		{"not yet valid", [][]byte{future.Cert.Raw}, ErrExpired, "not valid before"},
		{"other mesh", [][]byte{otherMesh.Cert.Raw}, ErrWrongMesh, `peer "b" belongs to mesh "staging", not "prod"`},
		{"garbage", [][]byte{[]byte("not a certificate")}, ErrMalformed, "peer certificate"},
		{"empty chain", nil, ErrUntrusted, "no certificate"},
		{"CA as leaf", [][]byte{ca.Cert.Raw}, ErrInvalidName, "no node"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := self.VerifyPeer(tc.raw, now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("err = %q, want it to contain %q", err, tc.contains)
			}
		})
	}
	// The CA itself expiring is reported too.
	if _, err := self.VerifyPeer([][]byte{b.Cert.Raw}, ca.Cert.NotAfter.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("after CA expiry: %v, want ErrExpired", err)
	}
}

// TestRotatedCARefusalNamesBothKeys: while a mesh rotates its CA, the old
// and the new CA have the same subject, so a refusal must name their keys
// for an operator to see which CA each side holds.
func TestRotatedCARefusalNamesBothKeys(t *testing.T) {
	oldCA, newCA := newCA(t, "prod"), newCA(t, "prod")
	if oldCA.Cert.Subject.String() != newCA.Cert.Subject.String() {
		t.Fatalf("the two CAs of mesh prod have subjects %q and %q, want the same", oldCA.Cert.Subject, newCA.Cert.Subject)
	}
	self, peer := issue(t, newCA, "a"), issue(t, oldCA, "b")
	_, err := self.VerifyPeer([][]byte{peer.Cert.Raw}, time.Now())
	if !errors.Is(err, ErrUntrusted) {
		t.Fatalf("VerifyPeer of an old-CA certificate = %v, want ErrUntrusted", err)
	}
	oldKey, newKey := keyID(oldCA.Cert.SubjectKeyId), keyID(newCA.Cert.SubjectKeyId)
	if oldKey == newKey || len(oldCA.Cert.SubjectKeyId) == 0 {
		t.Fatalf("CA key ids %s and %s do not tell the CAs apart", oldKey, newKey)
	}
	for _, want := range []string{"key " + oldKey, "trusts key " + newKey} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
}

func TestCheckNode(t *testing.T) {
	p := Peer{Node: "c", Mesh: "prod"}
	if err := p.CheckNode("c"); err != nil {
		t.Error(err)
	}
	err := p.CheckNode("b")
	if !errors.Is(err, ErrWrongName) || !strings.Contains(err.Error(), `names node "c", expected "b"`) {
		t.Errorf("CheckNode(b) = %v", err)
	}
}

func TestInsecure(t *testing.T) {
	a, err := Insecure("a", "dev")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Insecure || a.CA != nil || a.Node != "a" || a.Mesh != "dev" {
		t.Fatalf("insecure identity = %+v", a)
	}
	b, err := Insecure("b", "dev")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := newCA(t, "prod")
	expired, err := ca.IssueAt("e", now.Add(-48*time.Hour), now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, peer := range []*Identity{b, issue(t, ca, "c"), expired} {
		p, err := a.VerifyPeer([][]byte{peer.Cert.Raw}, now)
		if err != nil || p.Node != peer.Node || p.Mesh != peer.Mesh {
			t.Errorf("insecure VerifyPeer(%s) = %+v, %v", peer.Node, p, err)
		}
	}
	if _, err := a.VerifyPeer([][]byte{{0x30, 0x00}}, now); !errors.Is(err, ErrMalformed) {
		t.Errorf("insecure VerifyPeer(garbage) = %v, want ErrMalformed", err)
	}
	// A secure node does not trust an insecure one.
	if _, err := issue(t, ca, "d").VerifyPeer([][]byte{a.Cert.Raw}, now); !errors.Is(err, ErrUntrusted) {
		t.Errorf("secure VerifyPeer(insecure cert) = %v, want ErrUntrusted", err)
	}
	if _, err := Insecure("A", "dev"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Insecure(bad name) = %v", err)
	}
}

// TestMutualTLS runs a TLS 1.3 handshake in which each side presents its
// TLSCertificate and verifies the other with VerifyPeer, as links do.
func TestMutualTLS(t *testing.T) {
	ca := newCA(t, "prod")
	a, b := issue(t, ca, "a"), issue(t, ca, "b")
	otherCA := newCA(t, "prod")
	for _, tc := range []struct {
		name   string
		server *Identity
		ok     bool
	}{{"same CA", b, true}, {"other CA", issue(t, otherCA, "b"), false}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := func(id *Identity, seen *Peer) *tls.Config {
				return &tls.Config{
					MinVersion:         tls.VersionTLS13,
					Certificates:       []tls.Certificate{id.TLSCertificate()},
					InsecureSkipVerify: true, // VerifyPeerCertificate does the check
					ClientAuth:         tls.RequireAnyClientCert,
					VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
						p, err := id.VerifyPeer(raw, time.Now())
						*seen = p
						return err
					},
				}
			}
			// Kernel sockets buffer, so an alert written while the peer is
			// still writing cannot deadlock as it would on net.Pipe.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var clientSaw, serverSaw Peer
			done := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					done <- err
					return
				}
				server := tls.Server(c, cfg(tc.server, &serverSaw))
				done <- server.Handshake()
				server.Close()
			}()
			c1, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			client := tls.Client(c1, cfg(a, &clientSaw))
			cerr := client.Handshake()
			client.Close()
			serr := <-done
			if tc.ok {
				if cerr != nil || serr != nil {
					t.Fatalf("handshake: client %v, server %v", cerr, serr)
				}
				if clientSaw.Node != "b" || serverSaw.Node != "a" {
					t.Fatalf("client saw %q, server saw %q", clientSaw.Node, serverSaw.Node)
				}
				return
			}
			if !errors.Is(cerr, ErrUntrusted) {
				t.Fatalf("client handshake = %v, want ErrUntrusted", cerr)
			}
		})
	}
}

func TestGroupsAreSignedIntoTheCertificate(t *testing.T) {
	ca, err := NewCA("m", 0)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := ca.IssueWith("alpha", IssueOptions{Groups: []string{"ops", "web"}})
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := ca.Issue("bravo", 0)
	p, err := plain.VerifyPeer([][]byte{ops.Cert.Raw}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Groups, ",") != "ops,web" || strings.Join(ops.Groups(), ",") != "ops,web" {
		t.Fatalf("groups %v / %v, want ops,web", p.Groups, ops.Groups())
	}
	if _, err := ca.IssueWith("x", IssueOptions{Groups: []string{"Bad Group"}}); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("invalid group: %v", err)
	}
	// Nor does a peer take one the CA signed anyway: a group that is no
	// valid name (a terminal escape, here) would reach logs, the mesh
	// page and terminals.
	tmpl := nodeTemplate("m", "x", time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	tmpl.Subject.OrganizationalUnit = []string{"ops", "\x1b]52;c;cHduZWQ=\a"}
	bad, err := create(tmpl, ca.Cert, ops.Key.Public().(ed25519.PublicKey), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.VerifyPeer([][]byte{bad.Raw}, time.Now()); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("a CA-signed certificate with a group that is no name: %v, want ErrInvalidName", err)
	}
	// A node cannot add groups to its own certificate: re-signing it with
	// its own key breaks the CA's signature.
	forged := *ops.Cert
	forged.Subject.OrganizationalUnit = []string{"admin"}
	self, err := x509.CreateCertificate(rand.Reader, &forged, &forged, ops.Key.Public(), ops.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.VerifyPeer([][]byte{self}, time.Now()); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("self-signed certificate with extra groups: %v, want ErrUntrusted", err)
	}
}
