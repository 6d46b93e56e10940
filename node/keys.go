package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// ErrNoKeyring: the gossip keyring cannot be changed because the node runs
// no discovery, or gossips unencrypted (no Discovery.Key at start: a
// running node cannot turn encryption on).
var ErrNoKeyring = errors.New("no gossip keyring")

// ErrKeyInUse: the key is the keyring's primary key; make another one
// primary first.
var ErrKeyInUse = errors.New("gossip key is the primary key")

// ErrKeyNotInstalled: the key is not in the keyring.
var ErrKeyNotInstalled = errors.New("gossip key not installed")

// GossipKeyring describes the gossip keyring: every installed key decrypts
// gossip, the primary one also encrypts it. Keys are named by their
// fingerprint (KeyFingerprint), never shown.
type GossipKeyring struct {
	Primary string   `json:"primary"`
	Keys    []string `json:"keys"` // installed keys, primary first
}

// KeyFingerprint names a gossip key without revealing it: the first 8
// bytes of its SHA-256, in hex.
func KeyFingerprint(key []byte) string {
	h := sha256.Sum256(key)
	return hex.EncodeToString(h[:8])
}

func (n *Node) keyring() (*memberlist.Keyring, error) {
	if n.disco == nil || n.disco.keyring == nil {
		return nil, fmt.Errorf("%s: %w (gossip %s)", n.cfg.Name, ErrNoKeyring, map[bool]string{true: "is off", false: "is not encrypted"}[n.disco == nil])
	}
	return n.disco.keyring, nil
}

// GossipKeys lists the gossip keyring.
func (n *Node) GossipKeys() (GossipKeyring, error) {
	kr, err := n.keyring()
	if err != nil {
		return GossipKeyring{}, err
	}
	primary := kr.GetPrimaryKey()
	out := GossipKeyring{Primary: KeyFingerprint(primary), Keys: []string{KeyFingerprint(primary)}}
	for _, k := range kr.GetKeys() {
		if !bytes.Equal(k, primary) {
			out.Keys = append(out.Keys, KeyFingerprint(k))
		}
	}
	return out, nil
}

// InstallGossipKey adds key (16, 24 or 32 bytes) to the keyring: gossip
// encrypted with it is accepted from now on, and this node still encrypts
// with its primary key. Installing an installed key does nothing.
func (n *Node) InstallGossipKey(key []byte) error {
	kr, err := n.keyring()
	if err != nil {
		return err
	}
	if err := kr.AddKey(key); err != nil {
		return fmt.Errorf("install gossip key %s: %w: %v", KeyFingerprint(key), ErrInvalidConfig, err)
	}
	n.log.Info("gossip key installed", "key", KeyFingerprint(key))
	return nil
}

// UseGossipKey makes an installed key the primary one: this node encrypts
// its gossip with it from now on. Install it on every member first.
func (n *Node) UseGossipKey(key []byte) error {
	kr, err := n.keyring()
	if err != nil {
		return err
	}
	if !n.hasKey(kr, key) {
		return fmt.Errorf("use gossip key %s: %w", KeyFingerprint(key), ErrKeyNotInstalled)
	}
	if err := kr.UseKey(key); err != nil {
		return fmt.Errorf("use gossip key %s: %w", KeyFingerprint(key), err)
	}
	n.log.Info("gossip key in use", "key", KeyFingerprint(key))
	return nil
}

// RemoveGossipKey removes a key that is not the primary one: gossip
// encrypted with it is refused from now on.
func (n *Node) RemoveGossipKey(key []byte) error {
	kr, err := n.keyring()
	if err != nil {
		return err
	}
	switch {
	case !n.hasKey(kr, key):
		return fmt.Errorf("remove gossip key %s: %w", KeyFingerprint(key), ErrKeyNotInstalled)
	case bytes.Equal(kr.GetPrimaryKey(), key):
		return fmt.Errorf("remove gossip key %s: %w (use another key first)", KeyFingerprint(key), ErrKeyInUse)
	}
	if err := kr.RemoveKey(key); err != nil {
		return fmt.Errorf("remove gossip key %s: %w", KeyFingerprint(key), err)
	}
	n.log.Info("gossip key removed", "key", KeyFingerprint(key))
	return nil
}

func (n *Node) hasKey(kr *memberlist.Keyring, key []byte) bool {
	for _, k := range kr.GetKeys() {
		if bytes.Equal(k, key) {
			return true
		}
	}
	return false
}
