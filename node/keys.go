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
	d := n.discoNow()
	if d == nil || d.keyring == nil {
		return nil, fmt.Errorf("%s: %w (gossip %s)", n.cfg.Name, ErrNoKeyring, map[bool]string{true: "is off", false: "is not encrypted"}[d == nil])
	}
	return d.keyring, nil
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
	return n.changeKeyring("install", "installed", key, func(kr *memberlist.Keyring) error {
		if err := kr.AddKey(key); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
		return nil
	})
}

// UseGossipKey makes an installed key the primary one: this node encrypts
// its gossip with it from now on. Install it on every member first.
func (n *Node) UseGossipKey(key []byte) error {
	return n.changeKeyring("use", "in use", key, func(kr *memberlist.Keyring) error {
		if !hasKey(kr, key) {
			return ErrKeyNotInstalled
		}
		return kr.UseKey(key)
	})
}

// RemoveGossipKey removes a key that is not the primary one: gossip
// encrypted with it is refused from now on.
func (n *Node) RemoveGossipKey(key []byte) error {
	return n.changeKeyring("remove", "removed", key, func(kr *memberlist.Keyring) error {
		switch {
		case !hasKey(kr, key):
			return ErrKeyNotInstalled
		case bytes.Equal(kr.GetPrimaryKey(), key):
			return fmt.Errorf("%w (use another key first)", ErrKeyInUse)
		}
		return kr.RemoveKey(key)
	})
}

// changeKeyring applies change to the keyring and logs it.
func (n *Node) changeKeyring(verb, done string, key []byte, change func(*memberlist.Keyring) error) error {
	kr, err := n.keyring()
	if err != nil {
		return err
	}
	if err := change(kr); err != nil {
		return fmt.Errorf("%s gossip key %s: %w", verb, KeyFingerprint(key), err)
	}
	n.log.Info("gossip key "+done, "key", KeyFingerprint(key))
	return nil
}

func hasKey(kr *memberlist.Keyring, key []byte) bool {
	for _, k := range kr.GetKeys() {
		if bytes.Equal(k, key) {
			return true
		}
	}
	return false
}
