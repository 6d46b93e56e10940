package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

func certifierFor(t testing.TB, ca *identity.CA, name string, log *slog.Logger) (*originCertifier, *identity.Identity) {
	t.Helper()
	id, err := ca.Issue(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	return newOriginCertifier(id, log, 16), id
}

// twoCAs returns two CAs of one mesh name: the mesh's and a rogue one.
func twoCAs(t testing.TB) (ca, other *identity.CA) {
	t.Helper()
	ca, err := identity.NewCA("test", 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err = identity.NewCA("test", 0)
	if err != nil {
		t.Fatal(err)
	}
	return ca, other
}

func TestOriginAttestationChecks(t *testing.T) {
	ca, other := twoCAs(t)
	var logs syncBuf
	a, _ := certifierFor(t, ca, "a", slog.New(slog.NewTextHandler(&logs, nil)))
	b, _ := certifierFor(t, ca, "b", testLogger(t))
	b2, _ := certifierFor(t, ca, "b", testLogger(t))
	rogue, _ := certifierFor(t, other, "b", testLogger(t))
	a2, _ := certifierFor(t, ca, "a", testLogger(t))
	expiredID, err := ca.IssueAt("b", time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	expired := newOriginCertifier(expiredID, testLogger(t), 16)

	att := func(c *originCertifier, origin string, seqno uint16) []byte {
		b, err := c.Attest(origin, 5, seqno)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := att(b, "b", 7)
	if err := a.Verify("b", 5, 7, good); err != nil {
		t.Fatalf("b's own attestation: %v", err)
	}
	tampered := bytes.Clone(good)
	tampered[len(tampered)-1] ^= 1
	epochTampered := bytes.Clone(good) // claims epoch 4, signed for 5
	epochTampered[8] ^= 1
	if err := a.Verify("b", 4, 7, epochTampered); !errors.Is(err, errAttestation) {
		t.Errorf("an attestation whose epoch was changed: %v, want %v", err, errAttestation)
	}
	cases := map[string]struct {
		origin string
		seqno  uint16
		att    []byte
		want   error
	}{
		"other seqno":     {"b", 8, good, errAttestation},
		"other epoch":     {"b", 7, epochTampered, errAttestation},
		"other origin":    {"c", 7, good, errAttestation},
		"tampered":        {"b", 7, tampered, errAttestation},
		"truncated":       {"b", 7, good[:len(good)-1], errAttestation},
		"other CA":        {"b", 7, att(rogue, "b", 7), identity.ErrUntrusted},
		"expired":         {"b", 7, att(expired, "b", 7), identity.ErrExpired},
		"our name, other": {"a", 7, att(a2, "a", 7), errAttestation},
	}
	for name, c := range cases {
		if err := a.Verify(c.origin, 5, c.seqno, c.att); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "duplicate name") {
		t.Errorf("no WARN for our own name under another certificate:\n%s", logs.String())
	}
	// A second certificate for one name is accepted (a renewal looks the
	// same) and logged.
	if err := a.Verify("b", 5, 9, att(b2, "b", 9)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "two certificates attest one node name") {
		t.Errorf("no WARN for two certificates of b:\n%s", logs.String())
	}
}

// FuzzParseAttestation: the attestation decoder never panics and accepts
// only what re-encodes to the same bytes.
func FuzzParseAttestation(f *testing.F) {
	ca, err := identity.NewCA("test", 0)
	if err != nil {
		f.Fatal(err)
	}
	c, _ := certifierFor(f, ca, "b", slog.New(slog.DiscardHandler))
	good, err := c.Attest("b", 5, 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(append([]byte{attestV1}, good[9:]...)) // version 1: no epoch
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseAttestation(b)
		if err != nil {
			if !errors.Is(err, errAttestation) {
				t.Fatalf("error %v does not wrap errAttestation", err)
			}
			return
		}
		re := []byte{p.version}
		if p.version != attestV1 {
			re = binary.BigEndian.AppendUint64(re, p.epoch)
		}
		if attestationEpoch(b) != p.epoch {
			t.Fatalf("Epoch reads %d, the parser %d", attestationEpoch(b), p.epoch)
		}
		re = append(re, byte(len(p.cert)>>8), byte(len(p.cert)))
		re = append(re, p.cert...)
		re = append(re, byte(len(p.extra)>>8), byte(len(p.extra)))
		re = append(re, p.extra...)
		re = append(re, p.sig...)
		if !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, re)
		}
	})
}

// An origin's signed extra field and certificate reach a node two hops
// away (the hook for keys and session bounds).
func TestOriginRecordReachesNonNeighbours(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-b", "b-c")
	c.waitRoute("a", "c", 2)
	if err := c.nodes["c"].router.setOriginExtra([]byte("key record of c")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		rec, ok := c.nodes["a"].router.originRecord("c")
		if ok && string(rec.Extra) == "key record of c" {
			if !rec.Cert.NotAfter.Equal(c.nodes["c"].identity().Cert.NotAfter) {
				t.Fatalf("a holds a certificate of c expiring %v", rec.Cert.NotAfter)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a never received c's extra field: %+v %v", rec, ok)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A verification made under the old CA that an identity reload (a new CA
// after a compromise of the old) overtakes leaves no verdict and no groups
// behind: it is made again under the new CA, which refuses the old
// certificate. A reload under the same CA (a renewal) is verified again
// and accepted.
func TestVerifyOvertakenByIdentityReload(t *testing.T) {
	oldCA, newCA := twoCAs(t)
	b, _ := certifierFor(t, oldCA, "b", testLogger(t))
	att, err := b.Attest("b", 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		reloadCA *identity.CA
		want     error // nil: accepted and recorded
	}{
		"new CA":  {newCA, identity.ErrUntrusted},
		"renewal": {oldCA, nil},
	} {
		t.Run(name, func(t *testing.T) {
			a, _ := certifierFor(t, oldCA, "a", testLogger(t))
			reloaded, err := tc.reloadCA.Issue("a", 0)
			if err != nil {
				t.Fatal(err)
			}
			// c.now is read once the trust of a verification is loaded:
			// the first verification runs under the old identity while
			// the reload lands in the middle of it.
			var calls int
			a.now = func() time.Time {
				if calls++; calls == 1 {
					a.setIdentity(reloaded)
				}
				return time.Now()
			}
			err = a.Verify("b", 5, 3, att)
			groups, known := a.groupsOf("b")
			a.mu.Lock()
			_, recorded := a.certOf["b"]
			a.mu.Unlock()
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("Verify = %v, want %v", err, tc.want)
				}
				if known || recorded {
					t.Fatalf("b verified under the replaced CA is still known: groups %v", groups)
				}
				return
			}
			if err != nil || !known || !recorded {
				t.Fatalf("renewal: Verify = %v, known %v, recorded %v", err, known, recorded)
			}
			if calls < 2 {
				t.Fatalf("the verdict made under the old identity was kept (%d checks)", calls)
			}
		})
	}
}
