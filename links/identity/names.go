package identity

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Sentinel errors. Every error returned by this package wraps one of them.
var (
	// ErrExists: a file would be overwritten and force was not set.
	ErrExists = errors.New("identity file exists")
	// ErrUntrusted: a certificate does not chain to the mesh CA.
	ErrUntrusted = errors.New("untrusted certificate")
	// ErrExpired: a certificate is expired or not yet valid.
	ErrExpired = errors.New("certificate expired or not yet valid")
	// ErrWrongMesh: a certificate belongs to another mesh.
	ErrWrongMesh = errors.New("wrong mesh")
	// ErrWrongName: a certificate names another node than expected.
	ErrWrongName = errors.New("wrong node name")
	// ErrInvalidName: a node or mesh name breaks the naming rule, or a
	// certificate carries no usable circuitmesh name.
	ErrInvalidName = errors.New("invalid name")
	// ErrNoIdentity: an identity or CA file is missing.
	ErrNoIdentity = errors.New("no identity")
	// ErrKeyMismatch: a private key does not belong to its certificate.
	ErrKeyMismatch = errors.New("key does not match certificate")
	// ErrMalformed: a file or certificate cannot be decoded.
	ErrMalformed = errors.New("malformed identity data")
)

// URIScheme is the scheme of the URI SAN naming a node: circuitmesh://<mesh>/<node>.
const URIScheme = "circuitmesh"

// MaxNameLen is the longest node or mesh name.
const MaxNameLen = 63

// ValidateName checks a node or mesh name: 1 to 63 characters, the first a
// lower-case ASCII letter or digit, the rest lower-case letters, digits,
// '.', '_' or '-'. The error wraps ErrInvalidName.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("name is empty: %w", ErrInvalidName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("name %.20q... is %d bytes, longer than %d: %w", name, len(name), MaxNameLen, ErrInvalidName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if i > 0 {
			ok = ok || c == '.' || c == '_' || c == '-'
		}
		if !ok {
			return fmt.Errorf("name %q: character %q at %d not allowed (want [a-z0-9][a-z0-9._-]*): %w", name, c, i, ErrInvalidName)
		}
	}
	return nil
}

// nodeURI is the URI SAN for a node.
func nodeURI(mesh, node string) *url.URL {
	return &url.URL{Scheme: URIScheme, Host: mesh, Path: "/" + node}
}

// meshURI is the URI SAN for a mesh CA.
func meshURI(mesh string) *url.URL {
	return &url.URL{Scheme: URIScheme, Host: mesh}
}

// namesFromURIs returns the mesh and node named by the single circuitmesh
// URI in uris. node is empty for a CA URI.
func namesFromURIs(uris []*url.URL) (mesh, node string, err error) {
	found := false
	for _, u := range uris {
		if u == nil || u.Scheme != URIScheme {
			continue
		}
		if found {
			return "", "", fmt.Errorf("certificate carries more than one %s URI: %w", URIScheme, ErrInvalidName)
		}
		found = true
		mesh = u.Host
		node = strings.TrimPrefix(u.Path, "/")
	}
	if !found {
		return "", "", fmt.Errorf("certificate carries no %s:// URI: %w", URIScheme, ErrInvalidName)
	}
	if err := ValidateName(mesh); err != nil {
		return "", "", fmt.Errorf("mesh in certificate URI: %w", err)
	}
	if node != "" {
		if err := ValidateName(node); err != nil {
			return "", "", fmt.Errorf("node in certificate URI: %w", err)
		}
	}
	return mesh, node, nil
}
