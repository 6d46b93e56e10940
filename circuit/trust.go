package circuit

import (
	"fmt"

	"github.com/circuitmesh/circuitmesh/links"
)

// CheckSource applies the trust rule to an open header o received on a link
// whose authenticated neighbour is peer with role: an open at hop 0 must
// come from its Source itself; a forwarded open (hop > 0) must come from a
// router (leaves never forward), and its path must pass CheckPath (at hop
// > 0 it ends with that router's name). On failure it returns an error
// wrapping ErrRefusedByPolicy (and ErrForgedPath for the path), and the
// node should Refuse with code Policy.
//
// The check cannot see past the neighbour: a router may forge the Source
// of circuits it claims to relay, and the path before its own name (see
// the package documentation).
func CheckSource(o *Open, peer string, role links.Role) error {
	switch {
	case o.Hop == 0 && o.Source != peer:
		return fmt.Errorf("%w: open from %s claims source %s", ErrRefusedByPolicy, peer, o.Source)
	case o.Hop > 0 && role == links.RoleLeaf:
		return fmt.Errorf("%w: leaf %s forwarded an open (hop %d)", ErrRefusedByPolicy, peer, o.Hop)
	}
	if err := o.CheckPath(peer); err != nil {
		return fmt.Errorf("%w: %w", ErrRefusedByPolicy, err)
	}
	return nil
}
