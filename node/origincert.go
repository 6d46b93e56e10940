package node

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/links/ratelog"
	"github.com/circuitmesh/circuitmesh/routing"
)

// Origin attestation (docs/PROTOCOL.md, "Certified origins"), opaque to
// the routing engine:
//
//	attestation = version:u8 (=2) epoch:u64 certlen:u16 cert:certlen extralen:u16 extra sig:64
//
// sig is the origin's certificate key's Ed25519 signature over
//
//	"circuitmesh origin v2" 0x00 mesh 0x00 origin 0x00 epoch:u64 seqno:u16 extralen:u16 extra
//
// Version 1, which the release before signs, has no epoch (read as 0):
//
//	attestation = version:u8 (=1) certlen:u16 cert:certlen extralen:u16 extra sig:64
//	signed      = "circuitmesh origin v1" 0x00 mesh 0x00 origin 0x00 seqno:u16 extralen:u16 extra
const (
	attestVersion = 2
	attestContext = "circuitmesh origin v2\x00"
	// attestV1 and its context: verified, never signed.
	attestV1        = 1
	attestV1Context = "circuitmesh origin v1\x00"
	maxExtraLen     = 1024
)

// errAttestation is wrapped by every refusal of an attestation.
var errAttestation = errors.New("invalid origin attestation")

// originCertifier signs this node's origin attestations with its
// certificate key and verifies others' against the mesh CA. Each node has
// its own, but verdicts are cached process-wide, shared by every node of
// the process (sharedverify.go: certificates by trust scope, successes
// only; signatures, failures too; verified attestations; each two
// generations of at most sharedCacheGen entries), so a steady mesh checks
// each certificate once and then one signature per new (origin, seqno),
// however many nodes the process runs. The node's own table, certOf, is
// bounded to 2 × MaxRoutes + 64 origins.
type originCertifier struct {
	id    atomic.Pointer[identity.Identity]
	trust atomic.Pointer[trusted] // id with its trustScope, for Verify
	extra atomic.Pointer[[]byte]
	log   *slog.Logger
	now   func() time.Time
	max   int // bound of certOf

	mu sync.Mutex
	// origin -> the certificate last verified for it (its fingerprint and
	// groups, for authz.go), shared with the other nodes of the process;
	// cleared when the CA changes.
	certOf map[string]*sharedChain
	warned *ratelog.Log
}

var _ routing.Certifier = (*originCertifier)(nil)

func newOriginCertifier(id *identity.Identity, log *slog.Logger, maxRoutes int) *originCertifier {
	c := &originCertifier{
		log: log, now: time.Now, max: 2*maxRoutes + 64,
		certOf: make(map[string]*sharedChain),
		warned: ratelog.New(log, time.Minute, 1024),
	}
	c.storeID(id)
	return c
}

// trusted is an identity with its trust scope, swapped as one.
type trusted struct {
	id    *identity.Identity
	scope [32]byte
}

func (c *originCertifier) storeID(id *identity.Identity) *identity.Identity {
	c.trust.Store(&trusted{id: id, scope: trustScope(id)})
	return c.id.Swap(id)
}

// attestSigned returns the bytes an attestation of version signs.
func attestSigned(version uint8, mesh, origin string, epoch uint64, seqno uint16, extra []byte) []byte {
	b := make([]byte, 0, len(attestContext)+len(mesh)+len(origin)+14+len(extra))
	if version == attestV1 {
		b = append(b, attestV1Context...)
	} else {
		b = append(b, attestContext...)
	}
	b = append(b, mesh...)
	b = append(b, 0)
	b = append(b, origin...)
	b = append(b, 0)
	if version != attestV1 {
		b = binary.BigEndian.AppendUint64(b, epoch)
	}
	b = binary.BigEndian.AppendUint16(b, seqno)
	b = binary.BigEndian.AppendUint16(b, uint16(len(extra)))
	return append(b, extra...)
}

// Attest implements routing.Certifier.
func (c *originCertifier) Attest(origin string, epoch uint64, seqno uint16) ([]byte, error) {
	id := c.id.Load()
	var extra []byte
	if p := c.extra.Load(); p != nil {
		extra = *p
	}
	cert := id.Cert.Raw
	b := make([]byte, 0, 13+len(cert)+len(extra)+ed25519.SignatureSize)
	b = append(b, attestVersion)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = binary.BigEndian.AppendUint16(b, uint16(len(cert)))
	b = append(b, cert...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(extra)))
	b = append(b, extra...)
	b = append(b, ed25519.Sign(id.Key, attestSigned(attestVersion, id.Mesh, origin, epoch, seqno, extra))...)
	if len(b) > routing.MaxAttestationLen {
		return nil, fmt.Errorf("attestation of %d bytes exceeds %d: %w", len(b), routing.MaxAttestationLen, errAttestation)
	}
	return b, nil
}

// parsedAttestation is an attestation split into its fields.
type parsedAttestation struct {
	version          uint8
	epoch            uint64
	cert, extra, sig []byte
}

func parseAttestation(att []byte) (parsedAttestation, error) {
	var p parsedAttestation
	if len(att) < 5+ed25519.SignatureSize || att[0] != attestVersion && att[0] != attestV1 {
		return p, fmt.Errorf("%w: bad length or version", errAttestation)
	}
	p.version, att = att[0], att[1:]
	if p.version != attestV1 {
		if len(att) < 12+ed25519.SignatureSize {
			return p, fmt.Errorf("%w: bad length", errAttestation)
		}
		p.epoch, att = binary.BigEndian.Uint64(att), att[8:]
	}
	cl := int(binary.BigEndian.Uint16(att))
	rest := att[2:]
	if len(rest) < cl+2 {
		return p, fmt.Errorf("%w: truncated certificate", errAttestation)
	}
	p.cert, rest = rest[:cl], rest[cl:]
	el := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if el > maxExtraLen || len(rest) != el+ed25519.SignatureSize {
		return p, fmt.Errorf("%w: bad extra or signature length", errAttestation)
	}
	p.extra, p.sig = rest[:el], rest[el:]
	return p, nil
}

// Epoch implements routing.Certifier: the epoch att claims, unchecked.
func (c *originCertifier) Epoch(att []byte) uint64 { return attestationEpoch(att) }

// attestationEpoch returns the epoch att claims (0 for version 1, and for
// what is no attestation).
func attestationEpoch(att []byte) uint64 {
	if len(att) < 9 || att[0] != attestVersion {
		return 0
	}
	return binary.BigEndian.Uint64(att[1:])
}

// Verify implements routing.Certifier. A verification that an identity
// reload (setIdentity, a new CA say) overtook is made again under the new
// trust: a verdict, and the groups authorization reads from it, never
// outlives the trust it was made under.
func (c *originCertifier) Verify(origin string, epoch uint64, seqno uint16, att []byte) error {
	if attestationEpoch(att) != epoch {
		return fmt.Errorf("origin %q: attestation of epoch %d, not %d: %w", origin, attestationEpoch(att), epoch, errAttestation)
	}
	for attempt := 1; ; attempt++ {
		tr := c.trust.Load()
		ch, err := c.verifyAttestation(tr, origin, seqno, att)
		if err != nil {
			return err
		}
		c.mu.Lock()
		if c.trust.Load() != tr { // setIdentity ran meanwhile (it holds mu)
			c.mu.Unlock()
			if attempt < maxVerifyAttempts {
				continue
			}
			return fmt.Errorf("origin %q: the identity changed during verification: %w", origin, errAttestation)
		}
		old, seen := c.certOf[origin]
		if len(c.certOf) >= c.max {
			clear(c.certOf)
		}
		c.certOf[origin] = ch
		c.mu.Unlock()
		if seen && old.fp != ch.fp {
			c.warned.Warn("dup:"+origin, "two certificates attest one node name (a renewal, or two live nodes with the same name)",
				"node", origin, "seqno", seqno)
		}
		return nil
	}
}

// verifyAttestation checks att under the trust tr: from the process-wide
// record of attestations that verified when another node (or this one)
// verified the same bytes for the same origin and seqno under the same
// trust, checking only the certificate's validity at this node's time;
// otherwise in full, recording it.
func (c *originCertifier) verifyAttestation(tr *trusted, origin string, seqno uint16, att []byte) (*sharedChain, error) {
	if v := sharedAtts.get(att); v != nil && v.scope == tr.scope && v.origin == origin && v.seqno == seqno &&
		origin != tr.id.Node && v.chain.validAt(c.now()) {
		return v.chain, nil
	}
	p, err := parseAttestation(att)
	if err != nil {
		return nil, fmt.Errorf("origin %q: %w", origin, err)
	}
	ch, err := c.verifyUnder(tr, origin, seqno, sha256.Sum256(p.cert), p)
	if err != nil {
		return nil, err
	}
	sharedAtts.put(att, &attVerdict{scope: tr.scope, origin: origin, seqno: seqno, chain: ch})
	return ch, nil
}

// maxVerifyAttempts bounds how often Verify starts again after an identity
// reload overtook it.
const maxVerifyAttempts = 3

// verifyUnder checks an attestation against the trust tr; c.now is read
// after tr was loaded.
func (c *originCertifier) verifyUnder(tr *trusted, origin string, seqno uint16, fp [32]byte, p parsedAttestation) (*sharedChain, error) {
	id := tr.id
	now := c.now()
	ch, err := verifyChain(id, tr.scope, fp, p.cert, now)
	if err != nil {
		return nil, fmt.Errorf("origin %q: %w", origin, err)
	}
	if ch.node != origin {
		return nil, fmt.Errorf("origin %q: attestation certificate names %q: %w", origin, ch.node, errAttestation)
	}
	if now.After(ch.notAfter) {
		return nil, fmt.Errorf("origin %q: certificate expired at %s: %w", origin, ch.notAfter.UTC().Format(time.RFC3339), identity.ErrExpired)
	}
	if !verifySig(ch.pub, attestSigned(p.version, id.Mesh, origin, p.epoch, seqno, p.extra), p.sig) {
		return nil, fmt.Errorf("origin %q seqno %d: bad signature: %w", origin, seqno, errAttestation)
	}
	if origin == id.Node && !bytes.Equal(p.cert, id.Cert.Raw) {
		c.warned.Warn("dup-self", "another node presents this node's name with its own valid certificate (duplicate name); its routes are ignored",
			"node", origin, "seqno", seqno)
		return nil, fmt.Errorf("origin %q: attestation by another certificate for our own name: %w", origin, errAttestation)
	}
	return ch, nil
}

// setIdentity switches to a reloaded identity; certificate verdicts of
// another CA or mesh are not reused (they are cached by trust scope).
func (c *originCertifier) setIdentity(id *identity.Identity) {
	c.mu.Lock()
	old := c.storeID(id)
	if old.CA == nil || id.CA == nil || !old.CA.Equal(id.CA) {
		clear(c.certOf) // certificates (and groups) verified under another CA
	}
	c.mu.Unlock()
}

// setExtra sets the opaque field this node's attestations carry from its
// next seqno on (at most maxExtraLen bytes).
func (c *originCertifier) setExtra(extra []byte) error {
	if len(extra) > maxExtraLen {
		return fmt.Errorf("%w: extra of %d bytes exceeds %d", errAttestation, len(extra), maxExtraLen)
	}
	b := bytes.Clone(extra)
	c.extra.Store(&b)
	return nil
}

// originRecord is what a verified attestation says about an origin: its
// certificate (whose NotAfter bounds any session with it) and the extra
// field it signed.
type originRecord struct {
	Seqno uint16
	Cert  *x509.Certificate
	Extra []byte
}

// setOriginExtra makes this node attest extra with a new seqno, announced
// at once, so that every node can read it with originRecord.
func (r *router) setOriginExtra(extra []byte) error {
	if err := r.cert.setExtra(extra); err != nil {
		return err
	}
	r.apply(func(now time.Time) { r.eng.NewSeqno(now) })
	return nil
}

// originRecord returns the newest verified attestation of name (this
// node's own for its name), parsed.
func (r *router) originRecord(name string) (originRecord, bool) {
	r.mu.Lock()
	seq, att, ok := r.eng.Attestation(name)
	r.mu.Unlock()
	if !ok {
		return originRecord{}, false
	}
	p, err := parseAttestation(att)
	if err != nil {
		return originRecord{}, false
	}
	cert, err := x509.ParseCertificate(p.cert)
	if err != nil {
		return originRecord{}, false
	}
	return originRecord{Seqno: seq, Cert: cert, Extra: bytes.Clone(p.extra)}, true
}

// groupsOf returns the groups in the certificate that last attested a
// route origin named node (verified against the mesh CA), or this node's
// own groups; false when no attestation of node was verified (since the
// CA last changed).
func (c *originCertifier) groupsOf(node string) ([]string, bool) {
	if id := c.id.Load(); node == id.Node {
		return id.Groups(), true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.certOf[node]
	if !ok {
		return nil, false
	}
	return ch.groups, true
}
