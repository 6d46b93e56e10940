package identity

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"
)

// Identity is a node's certificate and key, plus the mesh CA it trusts.
type Identity struct {
	Node, Mesh string
	Cert       *x509.Certificate
	Key        ed25519.PrivateKey
	// CA is the mesh CA certificate; nil in insecure mode.
	CA *x509.Certificate
	// Insecure identities accept any well-formed peer certificate.
	Insecure bool
}

// Groups are the authorization groups in the identity's certificate.
func (id *Identity) Groups() []string { return id.Cert.Subject.OrganizationalUnit }

// TLSCertificate returns the identity as a certificate for tls.Config.
func (id *Identity) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{id.Cert.Raw}, PrivateKey: id.Key, Leaf: id.Cert}
}

// Peer is what a verified peer certificate says about the peer.
type Peer struct {
	Node, Mesh string
	// Groups are the authorization groups the CA signed into the
	// certificate (IssueOptions.Groups).
	Groups []string
	Cert   *x509.Certificate
}

// CheckNode reports an error wrapping ErrWrongName unless the certificate
// names node want.
func (p Peer) CheckNode(want string) error {
	if p.Node != want {
		return fmt.Errorf("peer certificate names node %q, expected %q: %w", p.Node, want, ErrWrongName)
	}
	return nil
}

// VerifyPeer checks a peer's presented chain (leaf first, DER) at time now:
// the leaf must be signed directly by id's CA (ErrUntrusted), both must be
// valid at now (ErrExpired), and the leaf must name id's mesh
// (ErrWrongMesh). It returns the names the certificate carries. Further
// certificates after the leaf are ignored. In insecure mode any well-formed
// certificate naming a node is accepted, whatever its signer, validity or
// mesh. A certificate that cannot be parsed wraps ErrMalformed; one without
// a circuitmesh name wraps ErrInvalidName. Checking one's own certificate
// (id.VerifyPeer([][]byte{id.Cert.Raw}, now)) validates a loaded identity.
func (id *Identity) VerifyPeer(rawCerts [][]byte, now time.Time) (Peer, error) {
	if len(rawCerts) == 0 {
		return Peer{}, fmt.Errorf("peer presented no certificate: %w", ErrUntrusted)
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return Peer{}, fmt.Errorf("peer certificate: %v: %w", err, ErrMalformed)
	}
	p, err := peerNames(leaf)
	if err != nil {
		return Peer{}, err
	}
	if id.Insecure {
		return p, nil
	}
	if id.CA == nil {
		return Peer{}, fmt.Errorf("verify peer %q: identity has no CA and is not insecure: %w", p.Node, ErrUntrusted)
	}
	if err := leaf.CheckSignatureFrom(id.CA); err != nil {
		return Peer{}, fmt.Errorf("peer certificate for %q is not signed by the CA of mesh %q (signed by %q, key %s; this node trusts key %s): %w",
			p.Node, id.Mesh, leaf.Issuer.String(), keyID(leaf.AuthorityKeyId), keyID(id.CA.SubjectKeyId), ErrUntrusted)
	}
	if err := checkValidity("peer certificate for "+quote(p.Node), leaf, now); err != nil {
		return Peer{}, err
	}
	if err := checkValidity("CA certificate of mesh "+quote(id.Mesh), id.CA, now); err != nil {
		return Peer{}, err
	}
	if p.Mesh != id.Mesh {
		return Peer{}, fmt.Errorf("peer %q belongs to mesh %q, not %q: %w", p.Node, p.Mesh, id.Mesh, ErrWrongMesh)
	}
	return p, nil
}

// peerNames reads the node and mesh names from a node certificate: the URI
// SAN is authoritative and the CommonName must agree with it.
func peerNames(leaf *x509.Certificate) (Peer, error) {
	mesh, node, err := namesFromURIs(leaf.URIs)
	if err != nil {
		return Peer{}, fmt.Errorf("peer certificate (CN %q): %w", leaf.Subject.CommonName, err)
	}
	if node == "" {
		return Peer{}, fmt.Errorf("peer certificate (CN %q) names a mesh but no node: %w", leaf.Subject.CommonName, ErrInvalidName)
	}
	if leaf.Subject.CommonName != node {
		return Peer{}, fmt.Errorf("peer certificate CN %q disagrees with its URI node %q: %w", leaf.Subject.CommonName, node, ErrInvalidName)
	}
	// The CA issues only groups that are valid names (ca issue checks
	// them); a certificate carrying any other (control characters, say,
	// which reach logs, pages and terminals) is refused, whoever signed
	// it.
	for _, g := range leaf.Subject.OrganizationalUnit {
		if err := ValidateName(g); err != nil {
			return Peer{}, fmt.Errorf("peer certificate for %q: group %q: %w", node, g, err)
		}
	}
	return Peer{Node: node, Mesh: mesh, Groups: leaf.Subject.OrganizationalUnit, Cert: leaf}, nil
}

func checkValidity(what string, c *x509.Certificate, now time.Time) error {
	if now.Before(c.NotBefore) {
		return fmt.Errorf("%s is not valid before %s (now %s): %w", what, c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), ErrExpired)
	}
	if now.After(c.NotAfter) {
		return fmt.Errorf("%s expired at %s (now %s): %w", what, c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), ErrExpired)
	}
	return nil
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

// keyID names a CA key in messages by the first 8 bytes of its key
// identifier (a CA certificate's SubjectKeyId, the AuthorityKeyId of the
// certificates it signed), in hex: the old and the new CA of a mesh that
// rotates its CA have the same subject, and only their keys tell them
// apart.
func keyID(id []byte) string {
	if len(id) == 0 {
		return "(no key id)"
	}
	return hex.EncodeToString(id[:min(len(id), 8)])
}
