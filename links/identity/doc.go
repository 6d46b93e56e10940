// Package identity holds a mesh's certificate authority and its nodes'
// certificates, and checks the certificates peers present on a link.
//
// A mesh has one CA (an Ed25519 key and a self-signed certificate carrying
// the mesh name). Each node holds a certificate signed directly by that CA
// (no intermediates) that names the node in its Subject CommonName and both
// names in a URI SAN of the form circuitmesh://<mesh>/<node>.
//
// What the caller must do:
//   - create the CA once per mesh (NewCA, SaveCA) and keep ca.key secret;
//   - issue each node its certificate (CA.Issue, SaveIdentity) and give the
//     node node.crt, node.key and ca.crt (LoadDir or LoadIdentity);
//   - on every link, call Identity.VerifyPeer with the peer's raw chain and
//     then Peer.CheckNode when the peer's name is known in advance.
//
// Insecure (development) identities are self-signed and accept any peer;
// callers should say so loudly.
//
// Files are PEM: certificates are written 0644, private keys 0600 (PKCS #8)
// and directories created 0700. Existing files are never overwritten unless
// force is set (an identical existing file is left as it is). Private keys
// that another user could read or change, and CA directories another user
// could write to, are refused when loaded (CheckPrivate).
//
// Every error wraps one of the exported sentinels (ErrExists, ErrUntrusted,
// ErrExpired, ErrWrongMesh, ErrWrongName, ErrInvalidName, ErrNoIdentity,
// ErrKeyMismatch, ErrMalformed, ErrUnsafeFile) for use with errors.Is.
package identity
