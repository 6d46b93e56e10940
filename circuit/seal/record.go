package seal

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Errors. Every error of this package wraps one of them.
var (
	// ErrIntegrity: a record failed authentication, or the stream ended
	// without the end-of-stream record (truncation).
	ErrIntegrity = errors.New("circuit: end-to-end integrity check failed")
	// ErrAuth: the other end could not prove the identity it claims (bad
	// certificate, key record, signature, or a name other than the one
	// expected).
	ErrAuth = errors.New("circuit: end-to-end authentication failed")
	// ErrRetry: the destination cannot take a one-message (IK) handshake:
	// the source's copy of its key is stale, the early-data timestamp is
	// outside the window, or the replay register is full. The source should
	// forget the key and open again with the full (XX) handshake.
	ErrRetry = errors.New("circuit: end-to-end handshake must be retried in full")
	// ErrForgedRetry: the destination states that it took a first
	// message of this open which a result header on the path answered
	// with Retry: a relay forged that refusal to make the source open
	// again and the destination take the same bytes twice. The open is
	// not made again. It wraps ErrIntegrity.
	ErrForgedRetry = fmt.Errorf("%w: a relay refused with retry a first message the destination had taken", ErrIntegrity)
	// ErrMalformedRecord: a key record could not be decoded.
	ErrMalformedRecord = errors.New("circuit: malformed key record")
)

const (
	recordVersion = 1
	// KeyRecordMaxSize bounds an encoded key record.
	KeyRecordMaxSize = 1 + 1 + 255 + 1 + 255 + 32 + 8 + ed25519.SignatureSize
	recordContext    = "circuitmesh key record v1\x00"
)

// KeyRecord binds a node's static X25519 key to its mesh certificate: it is
// signed by the certificate's Ed25519 key and expires no later than the
// certificate.
type KeyRecord struct {
	Mesh, Node string
	Key        [32]byte // X25519 public key
	Expiry     time.Time
	Sig        []byte // Ed25519 signature by the node certificate's key
}

func (r *KeyRecord) appendBody(b []byte) []byte {
	b = append(b, recordVersion, byte(len(r.Mesh)))
	b = append(b, r.Mesh...)
	b = append(b, byte(len(r.Node)))
	b = append(b, r.Node...)
	b = append(b, r.Key[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(r.Expiry.Unix()))
}

// Marshal encodes the record:
//
//	version u8 (1) | mesh u8 len + bytes | node u8 len + bytes |
//	key 32 bytes | expiry u64 (Unix seconds) | signature 64 bytes
func (r *KeyRecord) Marshal() []byte {
	b := r.appendBody(make([]byte, 0, 128))
	return append(b, r.Sig...)
}

// UnmarshalKeyRecord decodes a record produced by Marshal. It checks the
// layout only; Verify checks the signature. Errors wrap ErrMalformedRecord.
func UnmarshalKeyRecord(b []byte) (*KeyRecord, error) {
	bad := func(what string) (*KeyRecord, error) {
		return nil, fmt.Errorf("%w: %s", ErrMalformedRecord, what)
	}
	if len(b) > KeyRecordMaxSize {
		return bad("too long")
	}
	if len(b) < 1 || b[0] != recordVersion {
		return bad("unknown version")
	}
	b = b[1:]
	str := func() (string, bool) {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return "", false
		}
		s := string(b[1 : 1+int(b[0])])
		b = b[1+int(b[0]):]
		return s, s != "" && utf8.ValidString(s)
	}
	r := &KeyRecord{}
	var ok bool
	if r.Mesh, ok = str(); !ok {
		return bad("mesh name")
	}
	if r.Node, ok = str(); !ok {
		return bad("node name")
	}
	if len(b) != 32+8+ed25519.SignatureSize {
		return bad("length")
	}
	copy(r.Key[:], b)
	r.Expiry = time.Unix(int64(binary.BigEndian.Uint64(b[32:])), 0)
	r.Sig = append([]byte(nil), b[40:]...)
	return r, nil
}

// Sign fills r.Sig with key's signature over the record.
func (r *KeyRecord) Sign(key ed25519.PrivateKey) {
	r.Sig = ed25519.Sign(key, r.signed())
}

func (r *KeyRecord) signed() []byte {
	return r.appendBody([]byte(recordContext))
}

// Verify checks that cert (already verified against the mesh CA) signed r,
// that r names the same node and mesh as the certificate's names node and
// mesh, and that r has not expired at now nor outlives cert. Errors wrap
// ErrAuth.
func (r *KeyRecord) Verify(cert *x509.Certificate, mesh, node string, now time.Time) error {
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return fmt.Errorf("%w: certificate of %q has no Ed25519 key", ErrAuth, node)
	}
	switch {
	case r.Mesh != mesh || r.Node != node:
		return fmt.Errorf("%w: key record names %s/%s, certificate %s/%s", ErrAuth, r.Mesh, r.Node, mesh, node)
	case !ed25519.Verify(pub, r.signed(), r.Sig):
		return fmt.Errorf("%w: key record of %q: bad signature", ErrAuth, node)
	case now.After(r.Expiry):
		return fmt.Errorf("%w: key record of %q expired at %s", ErrAuth, node, r.Expiry.UTC().Format(time.RFC3339))
	case r.Expiry.After(cert.NotAfter):
		return fmt.Errorf("%w: key record of %q outlives its certificate", ErrAuth, node)
	}
	return nil
}

// Valid reports whether the record may still be used at now.
func (r *KeyRecord) Valid(now time.Time) bool { return now.Before(r.Expiry) }
