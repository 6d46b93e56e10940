package links

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// logBuf is a log sink safe for the transport's goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the WARN lines containing all of words.
func (l *logBuf) lines(words ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		ok := strings.Contains(line, "level=WARN")
		for _, w := range words {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

func logTo(buf *logBuf) func(*QUICConfig) {
	return func(c *QUICConfig) { c.Logger = slog.New(slog.NewTextHandler(buf, nil)) }
}

func countRefusals(n *atomic.Int64) func(*QUICConfig) {
	return func(c *QUICConfig) { c.OnRefused = func(net.Addr, error) { n.Add(1) } }
}

func both(mods ...func(*QUICConfig)) func(*QUICConfig) {
	return func(c *QUICConfig) {
		for _, m := range mods {
			if m != nil {
				m(c)
			}
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A second live node with an established node's name is refused with a
// clear reason, logged at WARN on both sides, and the established link
// stays up however often the newcomer retries.
func TestDuplicateNameRefusedWithoutFlapping(t *testing.T) {
	ca := testCA(t, "m")
	var alog, blog logBuf
	var refusals atomic.Int64
	a := newNode(t, issue(t, ca, "a"), both(logTo(&alog), countRefusals(&refusals)))
	b1 := newNode(t, issue(t, ca, "b"), nil)
	b2 := newNode(t, issue(t, ca, "b"), logTo(&blog))
	l := dial(t, b1, a)
	a.rec.waitEvent(t, "up", patience)
	est := a.Link("b").Established()

	_, err := b2.Dial(context.Background(), a.LocalAddr().String())
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), `another node named "b"`) {
		t.Fatalf("newcomer's dial: %v, want a refusal naming the duplicate", err)
	}
	stop := b2.Keep(a.LocalAddr().String())
	waitUntil(t, "3 more refusals of the newcomer", func() bool { return refusals.Load() >= 4 })
	stop()
	if ups, downs := a.rec.counts(); ups != 1 || downs != 0 {
		t.Fatalf("a saw %d LinkUp and %d LinkDown; the established link must stay", ups, downs)
	}
	if cur := a.Link("b"); cur == nil || !cur.Established().Equal(est) || l.Err() != nil {
		t.Fatal("the established link to b was replaced or lost")
	}
	if got := alog.lines("link refused", "duplicate node name"); len(got) != 1 {
		t.Errorf("a logged %d WARN lines for %d refusals of one peer, want 1:\n%s", len(got), refusals.Load(), alog.String())
	}
	if got := blog.lines("link refused", "refusing the newcomer"); len(got) != 1 {
		t.Errorf("the newcomer logged %d WARN lines for its refusals, want 1:\n%s", len(got), blog.String())
	}
}

// A link whose peer's certificate expires is closed with the reason, on
// both sides.
func TestPeerCertificateExpiryClosesLink(t *testing.T) {
	ca := testCA(t, "m")
	now := time.Now()
	short, err := ca.IssueAt("b", now.Add(-time.Minute), now.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ida := issue(t, ca, "a")
	a := newNode(t, ida, nil)
	b := newNode(t, short, nil)
	l := dial(t, b, a)
	a.rec.waitEvent(t, "up", patience)
	if got := l.(*quicLink).PeerNotAfter(); !got.Equal(ida.Cert.NotAfter) {
		t.Fatalf("b's view of a's expiry %v, want %v", got, ida.Cert.NotAfter)
	}
	a.rec.waitEvent(t, "down", 20*time.Second)
	a.rec.mu.Lock()
	aerr := a.rec.errs[0]
	a.rec.mu.Unlock()
	if !errors.Is(aerr, identity.ErrExpired) || !strings.Contains(aerr.Error(), "certificate of b expired at") {
		t.Fatalf("a's link down error: %v, want the expiry of b's certificate", aerr)
	}
	b.rec.waitEvent(t, "down", 20*time.Second)
	b.rec.mu.Lock()
	berr := b.rec.errs[0]
	b.rec.mu.Unlock()
	if !strings.Contains(berr.Error(), "certificate of b expired at") {
		t.Fatalf("b's link down error: %v, want the reason", berr)
	}
}

// Refusals are logged at WARN on both sides, once per peer address per
// minute however often the dialler retries.
func TestRefusalLoggedOnBothSidesOncePerMinute(t *testing.T) {
	ca := testCA(t, "m")
	expired, err := ca.IssueAt("b", time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var alog, blog logBuf
	var refusals atomic.Int64
	a := newNode(t, issue(t, ca, "a"), both(logTo(&alog), countRefusals(&refusals)))
	b := newNode(t, expired, logTo(&blog))
	stop := b.Keep(a.LocalAddr().String())
	waitUntil(t, "4 refusals", func() bool { return refusals.Load() >= 4 })
	stop()
	if got := alog.lines("link refused", "expired at"); len(got) != 1 {
		t.Errorf("acceptor logged %d WARN refusal lines for %d refusals, want 1:\n%s", len(got), refusals.Load(), alog.String())
	}
	if got := blog.lines("link refused", "expired at"); len(got) != 1 {
		t.Errorf("dialler logged %d WARN refusal lines, want 1:\n%s", len(got), blog.String())
	}
}

// caValidity is the validity of the short-lived CA certificates of the
// expiry tests: x509 stores NotAfter to the second, so the CA is valid for
// 9 to 10 s, within which the nodes start and link even on a loaded
// machine.
const caValidity = 10 * time.Second

// renewCA is ca's certificate re-signed with its key with NotAfter
// notAfter (stored to the second).
func renewCA(t *testing.T, ca *identity.CA, notAfter time.Time) *x509.Certificate {
	t.Helper()
	tmpl := *ca.Cert
	tmpl.NotAfter = notAfter
	der, err := x509.CreateCertificate(crand.Reader, &tmpl, &tmpl, ca.Key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// setCA gives n its identity id with the CA certificate ca.
func setCA(t *testing.T, n *node, id *identity.Identity, ca *x509.Certificate) {
	t.Helper()
	c := *id
	c.CA = ca
	if err := n.SetIdentity(&c); err != nil {
		t.Fatal(err)
	}
}

// downErr waits for n's link to go down and returns why.
func downErr(t *testing.T, n *node) error {
	t.Helper()
	n.rec.waitEvent(t, "down", patience)
	n.rec.mu.Lock()
	defer n.rec.mu.Unlock()
	return n.rec.errs[0]
}

// shortCAPair links a and b, whose certificates (valid for an hour) a CA
// valid for caValidity signed, and returns the CA and their identities.
func shortCAPair(t *testing.T) (ca *identity.CA, a, b *node, ida, idb *identity.Identity) {
	t.Helper()
	ca, err := identity.NewCA("m", caValidity)
	if err != nil {
		t.Fatal(err)
	}
	ida, idb = issue(t, ca, "a"), issue(t, ca, "b")
	a, b = newNode(t, ida, nil), newNode(t, idb, nil)
	dial(t, b, a)
	a.rec.waitEvent(t, "up", patience)
	return ca, a, b, ida, idb
}

// A link whose peer's certificate outlives the CA certificate that signed
// it is closed when the CA's expires, as a new link would be refused then,
// with the reason on both sides (the side whose timer fires first tells the
// other). Before, it stayed up until the peer's own certificate expired.
func TestCAExpiryClosesLink(t *testing.T) {
	_, a, b, _, _ := shortCAPair(t)
	for _, n := range []*node{a, b} {
		err := downErr(t, n)
		if !errors.Is(err, ErrLinkLost) || !strings.Contains(err.Error(), "the CA certificate of mesh m that signed the certificate of") {
			t.Fatalf("%s's link down error: %v, want the expiry of the CA certificate", n.name(), err)
		}
	}
}

// A node given a renewed CA certificate (same key, later NotAfter) before
// its old one expires keeps its live links past the old one's expiry: the
// peer's certificate verifies under the renewed one.
func TestRenewedCAKeepsLink(t *testing.T) {
	ca, a, b, ida, idb := shortCAPair(t)
	renewed := renewCA(t, ca, ca.Cert.NotAfter.Add(time.Hour))
	setCA(t, a, ida, renewed)
	setCA(t, b, idb, renewed)
	// Past the old CA's expiry (and its timer) on both sides.
	waitFor(t, "the old CA certificate to expire", patience, func() bool {
		return time.Now().After(ca.Cert.NotAfter.Add(2 * time.Second))
	})
	if ups, downs := a.rec.counts(); ups != 1 || downs != 0 || len(a.Links()) != 1 || len(b.Links()) != 1 {
		t.Fatalf("after the old CA certificate expired: a saw %d ups and %d downs, a has %d links, b %d", ups, downs, len(a.Links()), len(b.Links()))
	}
}

// A node given a renewed CA certificate that expires EARLIER than the
// one its links were verified under closes them at the renewed one's
// expiry. Before, the link's timer stayed armed at the old CA's expiry
// (an hour later) and the link stayed up past the CA it is held to.
func TestRenewedCAWithEarlierExpiryClosesLink(t *testing.T) {
	ca := testCA(t, "m")
	ida := issue(t, ca, "a")
	a := newNode(t, ida, nil)
	b := newNode(t, issue(t, ca, "b"), nil)
	dial(t, b, a)
	a.rec.waitEvent(t, "up", patience)
	sooner := renewCA(t, ca, time.Now().Add(3*time.Second))
	setCA(t, a, ida, sooner)
	err := downErr(t, a)
	want := "the CA certificate of mesh m that signed the certificate of b expired at " + sooner.NotAfter.UTC().Format(time.RFC3339)
	if !errors.Is(err, ErrLinkLost) || !strings.Contains(err.Error(), want) {
		t.Fatalf("a's link down error: %v, want %q", err, want)
	}
}

// A node whose CA certificate is replaced by one of another key keeps its
// live links, verified under the old one, until the old one expires, and
// then closes them saying so: the old CA's expiry, and that the peer's
// certificate does not verify under the CA in effect (ErrUntrusted).
// Before, the reason named the new CA's or the peer certificate's expiry
// and the error wrapped ErrExpired. The peer keeps the link (its CA was
// renewed) so that the reason is this node's.
func TestCAKeyRotationClosesLinkWithReason(t *testing.T) {
	other, err := identity.NewCA("m", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, a, b, ida, idb := shortCAPair(t)
	setCA(t, b, idb, renewCA(t, ca, ca.Cert.NotAfter.Add(time.Hour)))
	setCA(t, a, ida, other.Cert)
	err = downErr(t, a)
	if time.Now().Before(ca.Cert.NotAfter) {
		t.Fatalf("a closed its link when given a CA of another key, before the one it was verified under expired: %v", err)
	}
	want := "the CA certificate of mesh m that signed the certificate of b expired at " + ca.Cert.NotAfter.UTC().Format(time.RFC3339)
	if !errors.Is(err, ErrLinkLost) || !errors.Is(err, identity.ErrUntrusted) || !strings.Contains(err.Error(), want) {
		t.Fatalf("a's link down error: %v, want %q wrapping identity.ErrUntrusted", err, want)
	}
}
