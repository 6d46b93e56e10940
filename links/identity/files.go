package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Default file names inside an identity directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
	CertFile   = "node.crt"
	KeyFile    = "node.key"
)

const (
	certMode fs.FileMode = 0o644
	keyMode  fs.FileMode = 0o600
	dirMode  fs.FileMode = 0o700
)

// SaveCA writes ca.crt and ca.key into dir (created 0700 if missing).
// Without force it refuses (ErrExists) to replace a file that differs. It
// refuses (ErrUnsafeFile) a directory another user could write to or owns
// (CheckPrivate), where the key could be read or the CA replaced.
func SaveCA(dir string, ca *CA, force bool) error {
	key, err := encodeKey(ca.Key)
	if err != nil {
		return fmt.Errorf("save CA of mesh %q: %w", ca.Mesh, err)
	}
	return writeFiles(dir, true, force, []file{
		{CACertFile, encodeCert(ca.Cert), certMode},
		{CAKeyFile, key, keyMode},
	})
}

// LoadCA reads ca.crt and ca.key from dir. It refuses (ErrUnsafeFile) a
// directory or ca.key that another user could change or read
// (CheckPrivate): whoever chose the CA chooses the certificates it signs.
func LoadCA(dir string) (*CA, error) {
	if err := checkPrivateDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	certPEM, err := readFile(filepath.Join(dir, CACertFile), false)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readFile(filepath.Join(dir, CAKeyFile), true)
	if err != nil {
		return nil, err
	}
	ca, err := ParseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA from %s: %w", dir, err)
	}
	return ca, nil
}

// ParseCA decodes a CA from its PEM certificate and PKCS #8 PEM key.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := decodeCert(certPEM, "CA certificate")
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("CA certificate %q is not a CA: %w", cert.Subject.String(), ErrMalformed)
	}
	mesh, node, err := namesFromURIs(cert.URIs)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if node != "" {
		return nil, fmt.Errorf("CA certificate names node %q: %w", node, ErrInvalidName)
	}
	key, err := decodeKey(keyPEM, cert, "CA key")
	if err != nil {
		return nil, err
	}
	return &CA{Mesh: mesh, Cert: cert, Key: key}, nil
}

// SaveIdentity writes node.crt, node.key and ca.crt into dir (created 0700
// if missing). Without force it refuses (ErrExists) to replace a file that
// differs, so an identity can be saved next to its CA's own files.
func SaveIdentity(dir string, id *Identity, force bool) error {
	key, err := encodeKey(id.Key)
	if err != nil {
		return fmt.Errorf("save identity %q: %w", id.Node, err)
	}
	files := []file{{CertFile, encodeCert(id.Cert), certMode}, {KeyFile, key, keyMode}}
	if id.CA != nil {
		files = append(files, file{CACertFile, encodeCert(id.CA), certMode})
	}
	return writeFiles(dir, false, force, files)
}

// LoadDir loads node.crt, node.key and ca.crt from dir.
func LoadDir(dir string) (*Identity, error) {
	return LoadIdentity(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile), filepath.Join(dir, CACertFile))
}

// LoadIdentity loads a node identity from its three files. A missing file
// is named in an error wrapping ErrNoIdentity; a key file another user
// could read or change is refused (ErrUnsafeFile, see CheckPrivate). It
// does not check expiry; see VerifyPeer.
func LoadIdentity(certFile, keyFile, caFile string) (*Identity, error) {
	var data [3][]byte
	for i, name := range []string{certFile, keyFile, caFile} {
		b, err := readFile(name, name == keyFile)
		if err != nil {
			return nil, err
		}
		data[i] = b
	}
	// Each file's own faults name it: a damaged --ca or node.key was
	// reported under the certificate's path.
	id, err := parseIdentity(data, [3]string{"node certificate " + certFile, "node key " + keyFile, "CA certificate " + caFile})
	if err != nil {
		return nil, fmt.Errorf("load identity %s: %w", certFile, err)
	}
	return id, nil
}

// ParseIdentity decodes a node identity from PEM: the certificate must name
// a node, match the key, and be signed by the CA of the same mesh.
func ParseIdentity(certPEM, keyPEM, caPEM []byte) (*Identity, error) {
	return parseIdentity([3][]byte{certPEM, keyPEM, caPEM}, [3]string{"node certificate", "node key", "CA certificate"})
}

// parseIdentity is ParseIdentity of the certificate, key and CA
// certificate in data, named in errors as what says.
func parseIdentity(data [3][]byte, what [3]string) (*Identity, error) {
	cert, err := decodeCert(data[0], what[0])
	if err != nil {
		return nil, err
	}
	p, err := peerNames(cert)
	if err != nil {
		return nil, err
	}
	key, err := decodeKey(data[1], cert, what[1])
	if err != nil {
		return nil, err
	}
	caCert, err := decodeCert(data[2], what[2])
	if err != nil {
		return nil, err
	}
	if err := cert.CheckSignatureFrom(caCert); err != nil {
		return nil, fmt.Errorf("certificate of %q is not signed by the CA %q (key %s; the certificate's CA key is %s): %w",
			p.Node, caCert.Subject.String(), keyID(caCert.SubjectKeyId), keyID(cert.AuthorityKeyId), ErrUntrusted)
	}
	caMesh, _, err := namesFromURIs(caCert.URIs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what[2], err)
	}
	if caMesh != p.Mesh {
		return nil, fmt.Errorf("certificate of %q is for mesh %q but the CA is for mesh %q: %w", p.Node, p.Mesh, caMesh, ErrWrongMesh)
	}
	return &Identity{Node: p.Node, Mesh: p.Mesh, Cert: cert, Key: key, CA: caCert}, nil
}

func encodeCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func encodeKey(k ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// decodePEM returns the DER of the first PEM block in data, which must be
// of type typ, parsed by parse.
func decodePEM[T any](data []byte, typ, what string, parse func([]byte) (T, error)) (T, error) {
	var zero T
	b, _ := pem.Decode(data)
	if b == nil || b.Type != typ {
		return zero, fmt.Errorf("%s: no %s PEM block: %w", what, typ, ErrMalformed)
	}
	v, err := parse(b.Bytes)
	if err != nil {
		return zero, fmt.Errorf("%s: %v: %w", what, err, ErrMalformed)
	}
	return v, nil
}

func decodeCert(data []byte, what string) (*x509.Certificate, error) {
	return decodePEM(data, "CERTIFICATE", what, x509.ParseCertificate)
}

// decodeKey decodes an Ed25519 PKCS #8 key and checks it belongs to cert.
func decodeKey(data []byte, cert *x509.Certificate, what string) (ed25519.PrivateKey, error) {
	k, err := decodePEM(data, "PRIVATE KEY", what, x509.ParsePKCS8PrivateKey)
	if err != nil {
		return nil, err
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: %T is not an Ed25519 key: %w", what, k, ErrMalformed)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("%s does not belong to certificate %q: %w", what, cert.Subject.CommonName, ErrKeyMismatch)
	}
	return key, nil
}

// maxFile bounds an identity file, 1 MiB: a certificate or key in PEM is
// under 2 KiB, and only the first PEM block is read.
const maxFile = 1 << 20

// readFile reads name, of at most maxFile bytes (ErrMalformed); a private
// one only if CheckPrivate passes it.
func readFile(name string, private bool) ([]byte, error) {
	check := func(string, fs.FileInfo) error { return nil }
	if private {
		check = CheckPrivate
	}
	b, err := ReadChecked(name, maxFile, check)
	if errors.Is(err, ErrUnsafeFile) {
		return nil, err
	}
	if errors.Is(err, errTooLarge) {
		return nil, fmt.Errorf("%w (an identity file holds one PEM block): %w", err, ErrMalformed)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is missing: %w", name, ErrNoIdentity)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

type file struct {
	name string
	data []byte
	mode fs.FileMode
}

// writeFiles writes files into dir, which must pass CheckPrivate when
// private. Without force, it first checks that no file exists with other
// content, so nothing is written on refusal.
func writeFiles(dir string, private, force bool, files []file) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if private {
		if err := checkPrivateDir(dir); err != nil {
			return err
		}
	}
	var todo []file
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		old, err := os.ReadFile(path)
		switch {
		case err == nil && bytes.Equal(old, f.data):
			continue // already there
		case err == nil && !force:
			return fmt.Errorf("%s: %w", path, ErrExists)
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("check %s: %w", path, err)
		}
		todo = append(todo, f)
	}
	for _, f := range todo {
		if err := writeFile(filepath.Join(dir, f.name), f.data, f.mode, force); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes data to a temporary file with mode, then moves it into
// place: by rename when force, otherwise by link, which fails rather than
// replace a file created meanwhile.
func writeFile(path string, data []byte, mode fs.FileMode, force bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if force {
		err = os.Rename(tmp.Name(), path)
	} else {
		err = os.Link(tmp.Name(), path)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", path, ErrExists)
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
