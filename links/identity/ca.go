package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/url"
	"time"
)

// Default validities.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultNodeValidity = 365 * 24 * time.Hour
)

// clockSkew backdates NotBefore so that peers with slightly slow clocks
// accept a freshly issued certificate.
const clockSkew = 5 * time.Minute

// CA is a mesh certificate authority.
type CA struct {
	Mesh string
	Cert *x509.Certificate
	Key  ed25519.PrivateKey
}

// NewCA creates a mesh CA valid for validity (0 means DefaultCAValidity).
func NewCA(mesh string, validity time.Duration) (*CA, error) {
	if err := ValidateName(mesh); err != nil {
		return nil, fmt.Errorf("new CA: mesh: %w", err)
	}
	if validity < 0 {
		return nil, fmt.Errorf("new CA for mesh %q: negative validity %v: %w", mesh, validity, ErrExpired)
	}
	if validity == 0 {
		validity = DefaultCAValidity
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new CA for mesh %q: %w", mesh, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: mesh + " mesh CA", Organization: []string{mesh}},
		URIs:                  []*url.URL{meshURI(mesh)},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	cert, err := create(tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("new CA for mesh %q: %w", mesh, err)
	}
	return &CA{Mesh: mesh, Cert: cert, Key: key}, nil
}

// Issue creates a node identity signed by ca, valid from now for validity
// (0 means DefaultNodeValidity). The node name must pass ValidateName.
func (ca *CA) Issue(node string, validity time.Duration) (*Identity, error) {
	if validity < 0 {
		return nil, fmt.Errorf("issue %q: negative validity %v (use IssueAt): %w", node, validity, ErrExpired)
	}
	if validity == 0 {
		validity = DefaultNodeValidity
	}
	now := time.Now()
	return ca.IssueAt(node, now.Add(-clockSkew), now.Add(validity))
}

// IssueOptions are the optional parts of a node certificate.
type IssueOptions struct {
	// Validity is the certificate's lifetime from now. Default
	// DefaultNodeValidity.
	Validity time.Duration
	// Groups are authorization groups signed into the certificate (as
	// Subject OU values); policies name them as group:NAME. Each must pass
	// ValidateName.
	Groups []string
}

// IssueWith is Issue with options.
func (ca *CA) IssueWith(node string, o IssueOptions) (*Identity, error) {
	if o.Validity < 0 {
		return nil, fmt.Errorf("issue %q: negative validity %v (use IssueAt): %w", node, o.Validity, ErrExpired)
	}
	if o.Validity == 0 {
		o.Validity = DefaultNodeValidity
	}
	now := time.Now()
	return ca.issue(node, now.Add(-clockSkew), now.Add(o.Validity), o.Groups)
}

// IssueAt creates a node identity valid from notBefore to notAfter, which
// may lie in the past (for tests of expiry).
func (ca *CA) IssueAt(node string, notBefore, notAfter time.Time) (*Identity, error) {
	return ca.issue(node, notBefore, notAfter, nil)
}

func (ca *CA) issue(node string, notBefore, notAfter time.Time, groups []string) (*Identity, error) {
	for _, g := range groups {
		if err := ValidateName(g); err != nil {
			return nil, fmt.Errorf("issue %q: group: %w", node, err)
		}
	}
	if err := ValidateName(node); err != nil {
		return nil, fmt.Errorf("issue: node: %w", err)
	}
	if !notAfter.After(notBefore) {
		return nil, fmt.Errorf("issue %q: validity ends (%v) before it starts (%v): %w", node, notAfter, notBefore, ErrExpired)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issue %q: %w", node, err)
	}
	tmpl := nodeTemplate(ca.Mesh, node, notBefore, notAfter)
	tmpl.Subject.OrganizationalUnit = groups
	cert, err := create(tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue %q in mesh %q: %w", node, ca.Mesh, err)
	}
	return &Identity{Node: node, Mesh: ca.Mesh, Cert: cert, Key: key, CA: ca.Cert}, nil
}

// Insecure returns a throwaway self-signed identity for development mode:
// it trusts any well-formed peer certificate. Callers should log loudly
// when using it.
func Insecure(node, mesh string) (*Identity, error) {
	if err := ValidateName(node); err != nil {
		return nil, fmt.Errorf("insecure identity: node: %w", err)
	}
	if err := ValidateName(mesh); err != nil {
		return nil, fmt.Errorf("insecure identity: mesh: %w", err)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("insecure identity %q: %w", node, err)
	}
	now := time.Now()
	tmpl := nodeTemplate(mesh, node, now.Add(-clockSkew), now.Add(DefaultNodeValidity))
	cert, err := create(tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("insecure identity %q: %w", node, err)
	}
	return &Identity{Node: node, Mesh: mesh, Cert: cert, Key: key, Insecure: true}, nil
}

func nodeTemplate(mesh, node string, notBefore, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: node, Organization: []string{mesh}},
		URIs:                  []*url.URL{nodeURI(mesh, node)},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
}

// create signs tmpl with a fresh random serial number.
func create(tmpl, parent *x509.Certificate, pub ed25519.PublicKey, signer ed25519.PrivateKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
