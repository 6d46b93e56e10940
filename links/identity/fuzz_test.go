package identity

import (
	"errors"
	"testing"
	"time"
)

// FuzzVerifyPeer feeds arbitrary bytes as a peer certificate to a secure
// and an insecure identity: it must never panic, and anything accepted must
// carry valid names.
func FuzzVerifyPeer(f *testing.F) {
	ca := newCA(f, "prod")
	self := issue(f, ca, "a")
	insecure, err := Insecure("a", "prod")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(issue(f, ca, "b").Cert.Raw)
	f.Add(issue(f, newCA(f, "other"), "b").Cert.Raw)
	f.Add(ca.Cert.Raw)
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x82, 0x01})
	now := time.Now()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, id := range []*Identity{self, insecure} {
			p, err := id.VerifyPeer([][]byte{data}, now)
			if err != nil {
				continue
			}
			if ValidateName(p.Node) != nil || ValidateName(p.Mesh) != nil || p.Cert == nil {
				t.Fatalf("accepted certificate with bad names: %+v", p)
			}
			if !id.Insecure && p.Mesh != "prod" {
				t.Fatalf("secure identity accepted mesh %q", p.Mesh)
			}
		}
	})
}

// FuzzParseIdentity feeds arbitrary PEM to the file decoder.
func FuzzParseIdentity(f *testing.F) {
	ca := newCA(f, "prod")
	id := issue(f, ca, "a")
	key, err := encodeKey(id.Key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(encodeCert(id.Cert), key, encodeCert(ca.Cert))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), key, []byte{})
	f.Fuzz(func(t *testing.T, certPEM, keyPEM, caPEM []byte) {
		got, err := ParseIdentity(certPEM, keyPEM, caPEM)
		if err != nil {
			for _, s := range []error{ErrMalformed, ErrInvalidName, ErrKeyMismatch, ErrUntrusted, ErrWrongMesh} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		if ValidateName(got.Node) != nil || got.Key == nil || got.CA == nil {
			t.Fatalf("parsed identity is incomplete: %+v", got)
		}
		if _, err := ParseCA(caPEM, keyPEM); err == nil {
			t.Fatal("node key accepted as CA key")
		}
	})
}
