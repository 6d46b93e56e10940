package node

import (
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

// ErrCertificateExpired: the node's own certificate, or the CA
// certificate it checks every peer against, is expired or not yet valid.
// New refuses such an identity, and ReloadIdentity keeps the old one. It
// also matches identity.ErrExpired.
var ErrCertificateExpired = fmt.Errorf("node identity not valid now: %w", identity.ErrExpired)

// ErrNoIdentityFiles: ReloadIdentity on a node whose identity was not
// loaded from files.
var ErrNoIdentityFiles = errors.New("node identity was not loaded from files")

// The node warns when its certificate expires within certWarnWithin: at
// start, on reload, and every certWarnEvery while it runs.
const (
	certWarnWithin = 7 * 24 * time.Hour
	certWarnEvery  = 24 * time.Hour
)

// checkOwnCert refuses a node certificate, or a CA certificate, that is
// not valid at now: with a CA certificate out of its dates, every peer's
// certificate fails its check, and the node links to no one.
func checkOwnCert(id *identity.Identity, now time.Time) error {
	if id.Insecure {
		return nil
	}
	for _, c := range ownCerts(id) {
		if now.Before(c.cert.NotBefore) || now.After(c.cert.NotAfter) {
			return fmt.Errorf("%w: %s is valid from %s to %s, now is %s", ErrCertificateExpired, c.whose,
				c.cert.NotBefore.UTC().Format(time.RFC3339), c.cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// checkIdentity refuses an identity the node could not use: nil or
// without a certificate or key (ErrInvalidConfig), a key that is not the
// certificate's (identity.ErrKeyMismatch), a certificate its CA did not
// sign or that names another node or mesh than the identity says, and
// certificates not valid at now (checkOwnCert). Such an identity, once
// set, failed every new link's handshake while the live ones stayed up.
func checkIdentity(id *identity.Identity, now time.Time) error {
	if id == nil || id.Cert == nil || len(id.Key) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: an identity needs a certificate and its Ed25519 key", ErrInvalidConfig)
	}
	if pub, ok := id.Cert.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(id.Key.Public()) {
		return fmt.Errorf("%w: the key of node %q is not its certificate's: %w", ErrInvalidConfig, id.Node, identity.ErrKeyMismatch)
	}
	if err := checkOwnCert(id, now); err != nil {
		return err
	}
	if id.CA == nil && !id.Insecure {
		return nil // fails its links' checks instead
	}
	p, err := id.VerifyPeer([][]byte{id.Cert.Raw}, now)
	if err != nil {
		return fmt.Errorf("%w: own certificate: %w", ErrInvalidConfig, err)
	}
	if p.Node != id.Node || p.Mesh != id.Mesh {
		return fmt.Errorf("%w: the certificate names node %q in mesh %q, the identity %q in %q: %w",
			ErrInvalidConfig, p.Node, p.Mesh, id.Node, id.Mesh, identity.ErrWrongName)
	}
	return nil
}

// ownCert is one of the certificates a node's identity holds, named for
// its messages: what it is, whose, and what to do before it expires.
type ownCert struct {
	what, whose, renew string
	cert               *x509.Certificate
}

// ownCerts is the node's certificate and its mesh's CA certificate, those
// the identity holds (one without a CA fails its links' checks instead).
func ownCerts(id *identity.Identity) []ownCert {
	certs := []ownCert{{"node certificate", fmt.Sprintf("certificate of node %q", id.Node),
		"renew it and reload (SIGHUP or circuitmesh reload)", id.Cert}}
	if id.CA != nil {
		certs = append(certs, ownCert{"mesh CA certificate", fmt.Sprintf("CA certificate of mesh %q", id.Mesh),
			"rotate the CA and restart every node (docs/SECURITY.md, Rotating the CA)", id.CA})
	}
	return certs
}

// warnExpiring logs a WARN if the node's certificate, or its mesh's CA
// certificate, expires soon: when the CA's does, every link goes down.
func (n *Node) warnExpiring(now time.Time) {
	id := n.identity()
	if id.Insecure {
		return
	}
	for _, c := range ownCerts(id) {
		if left := c.cert.NotAfter.Sub(now); left < certWarnWithin {
			n.log.Warn(c.what+" expires soon: "+c.renew,
				"not_after", c.cert.NotAfter.UTC().Format(time.RFC3339), "left", left.Round(time.Minute))
		}
	}
}

// watchCertificate repeats the expiry warning every certWarnEvery.
func (n *Node) watchCertificate() {
	defer n.wg.Done()
	tick := time.NewTicker(certWarnEvery)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-tick.C:
			n.warnExpiring(now)
		}
	}
}

// identity returns the node's current identity.
func (n *Node) identity() *identity.Identity { return n.id.Load() }

// identityFiles returns the identity files cfg names (CertFile, KeyFile,
// CAFile, else DataDir's), if any: New loads them when Identity is nil,
// and ReloadIdentity reads them.
func identityFiles(cfg *Config) (cert, key, ca string, ok bool) {
	if cfg.Insecure {
		return "", "", "", false
	}
	cert, key, ca = cfg.CertFile, cfg.KeyFile, cfg.CAFile
	if cfg.DataDir != "" {
		pick := func(p *string, name string) {
			if *p == "" {
				*p = cfg.DataDir + "/" + name
			}
		}
		pick(&cert, identity.CertFile)
		pick(&key, identity.KeyFile)
		pick(&ca, identity.CACertFile)
	}
	return cert, key, ca, cert != "" && key != "" && ca != ""
}

// ReloadIdentity reads the node's identity files (Config.CertFile,
// KeyFile and CAFile, else those in DataDir) again and switches to them
// (see SetIdentity). It fails with ErrNoIdentityFiles if the configuration
// names no files.
func (n *Node) ReloadIdentity() error {
	return n.reloadIdentity(nil)
}

// reloadIdentity is ReloadIdentity; once the node switched to the files
// read, it runs then (if not nil) under the same lock, before another
// reload or SetIdentity can switch the node again.
func (n *Node) reloadIdentity(then func()) error {
	if !n.idFiles.ok {
		return fmt.Errorf("reload identity of %s: %w", n.cfg.Name, ErrNoIdentityFiles)
	}
	// Read and applied under one lock: of two reloads at once, the one
	// applied last read the files last.
	n.setID.Lock()
	defer n.setID.Unlock()
	id, err := identity.LoadIdentity(n.idFiles.cert, n.idFiles.key, n.idFiles.ca)
	if err != nil {
		return fmt.Errorf("reload identity of %s: %w", n.cfg.Name, err)
	}
	if err := n.setIdentityLocked(id); err != nil {
		return err
	}
	if then != nil {
		then()
	}
	return nil
}

// SetIdentity switches the node to a renewed certificate (or CA) of the
// same node and mesh, without dropping links or circuits: new links present
// the new certificate, and the node announces a new seqno attested with it.
// Each live link stays up until its peer's certificate expires. An expired
// certificate is refused (ErrCertificateExpired), and so are a nil
// identity, a key that is not the certificate's and a certificate its CA
// did not sign (ErrInvalidConfig): the node keeps the identity it has.
// Calls at once are applied one after the other.
func (n *Node) SetIdentity(id *identity.Identity) error {
	n.setID.Lock()
	defer n.setID.Unlock()
	return n.setIdentityLocked(id)
}

// setIdentityLocked is SetIdentity, with n.setID held.
func (n *Node) setIdentityLocked(id *identity.Identity) error {
	if err := checkIdentity(id, time.Now()); err != nil {
		return fmt.Errorf("set identity of %s: %w", n.cfg.Name, err)
	}
	cur := n.identity()
	if id.Node != cur.Node || id.Mesh != cur.Mesh {
		return fmt.Errorf("%w: new identity names node %q in mesh %q, want %q in %q", ErrInvalidConfig, id.Node, id.Mesh, cur.Node, cur.Mesh)
	}
	keys, err := seal.NewKeys(id) // a new key means a new end-to-end key record
	if err != nil {
		return fmt.Errorf("set identity of %s: %w", n.cfg.Name, err)
	}
	// The new keys count their cache evictions on from the old ones', so
	// circuitmesh_seal_cache_evictions_total does not go back.
	keys.ContinueStats(n.seal.Load())
	n.mu.Lock()
	tr := n.transport
	n.mu.Unlock()
	if s, ok := tr.(interface {
		SetIdentity(*identity.Identity) error
	}); ok {
		if err := s.SetIdentity(id); err != nil {
			return fmt.Errorf("set identity of %s: %w", n.cfg.Name, err)
		}
	}
	n.id.Store(id)
	if n.cfg.hooks != nil && n.cfg.hooks.midIdentity != nil {
		n.cfg.hooks.midIdentity(id)
	}
	n.seal.Store(keys) // peers holding the old key record get Retry once, then learn the new one
	n.router.setIdentity(id)
	if n.disco != nil {
		n.disco.republish() // gossip metadata signed with the new key
	}
	n.log.Info("identity reloaded", "not_after", id.Cert.NotAfter.UTC().Format(time.RFC3339))
	n.warnExpiring(time.Now())
	return nil
}
