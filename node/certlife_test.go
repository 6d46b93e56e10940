package node

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// syncBuf is a log sink safe for a node's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestNewRefusesExpiredCertificate(t *testing.T) {
	ca, err := identity.NewCA("test", 0)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.IssueAt("a", time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{Identity: id, Logger: testLogger(t)})
	if !errors.Is(err, ErrCertificateExpired) || !errors.Is(err, identity.ErrExpired) {
		t.Fatalf("New with an expired certificate: %v, want ErrCertificateExpired", err)
	}
}

func TestWarnsWhenOwnCertificateExpiresWithinAWeek(t *testing.T) {
	ca, err := identity.NewCA("test", 0)
	if err != nil {
		t.Fatal(err)
	}
	soon, err := ca.IssueAt("a", time.Now().Add(-time.Hour), time.Now().Add(3*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	later, err := ca.Issue("b", 0)
	if err != nil {
		t.Fatal(err)
	}
	// The mesh's CA certificate expiring soon takes every link down with
	// it: that is warned of too.
	caSoon, err := ca.Issue("c", 0)
	if err != nil {
		t.Fatal(err)
	}
	caSoon.CA = caCertValid(t, ca, time.Now().Add(-time.Hour), time.Now().Add(3*24*time.Hour))
	for _, tc := range []struct {
		id   *identity.Identity
		warn bool
		msg  string
	}{{soon, true, "node certificate"}, {later, false, "node certificate"}, {caSoon, true, "mesh CA certificate"}} {
		var buf syncBuf
		n, err := New(Config{Identity: tc.id, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		n.Close()
		got := strings.Contains(buf.String(), `level=WARN msg="`+tc.msg+` expires soon`)
		if got != tc.warn {
			t.Errorf("%s (%s expires %v): warned %v, want %v\n%s", tc.id.Node, tc.msg, tc.id.Cert.NotAfter, got, tc.warn, buf.String())
		}
	}
}

// identityFromFiles has the node name, when built, load its identity id
// from files in dir, which ReloadIdentity reads again.
func (c *cluster) identityFromFiles(t *testing.T, name string, id *identity.Identity, dir string) {
	t.Helper()
	if err := identity.SaveIdentity(dir, id, false); err != nil {
		t.Fatal(err)
	}
	c.tweak = func(cfg *Config) {
		if cfg.Name == name {
			cfg.Identity, cfg.DataDir = nil, dir
		}
	}
}

// Reloading renewed identity files keeps open circuits, new links present
// the new certificate, and the mesh learns it through a new attestation.
func TestReloadIdentityKeepsCircuits(t *testing.T) {
	c := newCluster(t, true)
	dir := t.TempDir()
	old, err := c.ca.IssueAt("b", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c.identityFromFiles(t, "b", old, dir)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	b := c.nodes["b"]
	serve(t, b, "echo2", echoHandler)
	conn, err := c.nodes["a"].Dial(ctxT(t, 10*time.Second), "b", "echo2")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echo := func(msg string) {
		t.Helper()
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
			t.Fatalf("echo %q: got %q, %v", msg, got, err)
		}
	}
	echo("before")
	oldRecord := b.seal.Load().Record()

	// A reload with an expired certificate is refused; the old one stays.
	expired, err := c.ca.IssueAt("b", time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := identity.SaveIdentity(dir, expired, true); err != nil {
		t.Fatal(err)
	}
	if err := b.ReloadIdentity(); !errors.Is(err, ErrCertificateExpired) {
		t.Fatalf("reload of an expired certificate: %v", err)
	}
	renewed, err := c.ca.Issue("b", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := identity.SaveIdentity(dir, renewed, true); err != nil {
		t.Fatal(err)
	}
	if err := b.ReloadIdentity(); err != nil {
		t.Fatal(err)
	}
	echo("after the reload")

	// A new link sees the renewed certificate.
	c.build("c-b")
	l := c.nodes["c"].link("b")
	if l == nil {
		t.Fatal("no link c-b")
	}
	na, ok := l.(interface{ PeerNotAfter() time.Time })
	if !ok || !na.PeerNotAfter().Equal(renewed.Cert.NotAfter) {
		t.Fatalf("c's link to b carries a certificate expiring %v, want the renewed one (%v)", na.PeerNotAfter(), renewed.Cert.NotAfter)
	}
	// a learns b's renewed certificate through b's new attestation.
	deadline := time.Now().Add(20 * time.Second)
	for {
		a := c.nodes["a"].router
		a.mu.Lock()
		_, att, ok := a.eng.Attestation("b")
		a.mu.Unlock()
		if p, err := parseAttestation(att); ok && err == nil && bytes.Equal(p.cert, renewed.Cert.Raw) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a never received b's attestation with the renewed certificate")
		}
		time.Sleep(10 * time.Millisecond)
	}
	echo("at the end")

	// The reload changed b's end-to-end key with its certificate key. a
	// holds b's old key record from the first circuit; a new circuit still
	// opens, sealed under b's new key.
	if b.seal.Load().Record().Key == oldRecord.Key {
		t.Fatal("b's end-to-end key did not follow its reloaded certificate")
	}
	conn2, err := c.nodes["a"].Dial(ctxT(t, 10*time.Second), "b", "echo2")
	if err != nil {
		t.Fatalf("dial after b's key changed: %v", err)
	}
	defer conn2.Close()
	if !conn2.Sealed() {
		t.Fatal("the circuit after the key change is not sealed")
	}
	if _, err := conn2.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn2, make([]byte, 1)); err != nil {
		t.Fatalf("echo after b's key changed: %v", err)
	}
}
