package admin

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"

	"github.com/circuitmesh/circuitmesh/node"
)

// PathKeys lists the gossip keyring (GET) or changes it (POST KeyOp); both
// answer node.GossipKeyring. Keys are shown by fingerprint only.
const PathKeys = "/v1/keys"

// KeyNode is what the keys endpoint needs from the node; *node.Node
// implements it.
type KeyNode interface {
	GossipKeys() (node.GossipKeyring, error)
	InstallGossipKey(key []byte) error
	UseGossipKey(key []byte) error
	RemoveGossipKey(key []byte) error
}

// KeyOp changes the gossip keyring: Op is "install", "use" or "remove";
// Key is the key in base64.
type KeyOp struct {
	Op  string `json:"op"`
	Key string `json:"key"`
}

func (s *Server) keyNode(w http.ResponseWriter) (KeyNode, bool) {
	kn, ok := s.node.(KeyNode)
	if !ok {
		writeError(w, fmt.Errorf("this node has no gossip keyring support: %w", ErrBadRequest))
	}
	return kn, ok
}

func (s *Server) handleKeys(w http.ResponseWriter, r *http.Request) {
	kn, ok := s.keyNode(w)
	if !ok {
		return
	}
	kr, err := kn.GossipKeys()
	if err != nil {
		writeError(w, keyError(err))
		return
	}
	writeJSON(w, kr)
}

func (s *Server) handleKeyOp(w http.ResponseWriter, r *http.Request) {
	kn, ok := s.keyNode(w)
	if !ok {
		return
	}
	var op KeyOp
	if !readJSON(w, r, &op) {
		return
	}
	key, err := base64.StdEncoding.DecodeString(op.Key)
	if err != nil {
		writeError(w, fmt.Errorf("key: not base64: %w", ErrBadRequest))
		return
	}
	var f func([]byte) error
	switch op.Op {
	case "install":
		f = kn.InstallGossipKey
	case "use":
		f = kn.UseGossipKey
	case "remove":
		f = kn.RemoveGossipKey
	default:
		writeError(w, fmt.Errorf("op %q: want install, use or remove: %w", op.Op, ErrBadRequest))
		return
	}
	if err := f(key); err != nil {
		writeError(w, keyError(err))
		return
	}
	s.handleKeys(w, r)
}

// keyError maps a keyring error onto the admin API's statuses. A node
// without a keyring (no gossip, or gossip without a key) is asked for
// something it cannot do, not given a bad argument: 409, like a primary
// key that cannot be removed, and its error says why without a suffix.
func keyError(err error) error {
	switch {
	case errors.Is(err, node.ErrNoKeyring):
		return err // statusOf: 409
	case errors.Is(err, node.ErrKeyNotInstalled):
		return fmt.Errorf("%w: %w", err, ErrNotFound)
	case errors.Is(err, node.ErrKeyInUse):
		return fmt.Errorf("%w: %w", err, ErrConflict)
	}
	return fmt.Errorf("%w: %w", err, ErrBadRequest)
}
