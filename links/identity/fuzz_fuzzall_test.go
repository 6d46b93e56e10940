package identity

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseCA feeds arbitrary PEM to the CA file decoder: a refusal wraps
// one of the package's sentinels, and an accepted CA has a valid mesh name
// and writes back to the same files.
func FuzzParseCA(f *testing.F) {
	ca := newCA(f, "prod")
	key, err := encodeKey(ca.Key)
	if err != nil {
		f.Fatal(err)
	}
	node := issue(f, ca, "a")
	nodeKey, err := encodeKey(node.Key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(encodeCert(ca.Cert), key)
	f.Add(encodeCert(node.Cert), nodeKey)
	f.Add(encodeCert(ca.Cert), nodeKey)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), key)
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		got, err := ParseCA(certPEM, keyPEM)
		if err != nil {
			for _, s := range []error{ErrMalformed, ErrInvalidName, ErrKeyMismatch} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		if ValidateName(got.Mesh) != nil {
			t.Fatalf("accepted CA of mesh %q", got.Mesh)
		}
		k2, err := encodeKey(got.Key)
		if err != nil {
			t.Fatalf("accepted CA key does not encode: %v", err)
		}
		again, err := ParseCA(encodeCert(got.Cert), k2)
		if err != nil || again.Mesh != got.Mesh || !bytes.Equal(again.Cert.Raw, got.Cert.Raw) || !again.Key.Equal(got.Key) {
			t.Fatalf("CA written back does not read back the same: %v", err)
		}
	})
}
