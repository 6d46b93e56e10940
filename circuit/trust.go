package circuit

import (
	"fmt"

	"github.com/circuitmesh/circuitmesh/links"
)

// CheckSource applies the trust rule to an open header o received on a link
// whose authenticated neighbour is peer with role: an open at hop 0 must
// come from its Source itself; a forwarded open (hop > 0) must come from a
// router (leaves never forward) and, when the path is recorded, end with
// that router's name. On failure it returns an error wrapping
// ErrRefusedByPolicy, and the node should Refuse with code Policy.
//
// The check cannot see past the neighbour: a router may forge the Source
// of circuits it claims to relay (see the package documentation).
func CheckSource(o *Open, peer string, role links.Role) error {
	switch {
	case o.Hop == 0 && o.Source != peer:
		return fmt.Errorf("%w: open from %s claims source %s", ErrRefusedByPolicy, peer, o.Source)
	case o.Hop > 0 && role == links.RoleLeaf:
		return fmt.Errorf("%w: leaf %s forwarded an open (hop %d)", ErrRefusedByPolicy, peer, o.Hop)
	case o.Hop > 0 && o.Flags&FlagRecordPath != 0 && (len(o.Path) == 0 || o.Path[len(o.Path)-1] != peer):
		return fmt.Errorf("%w: open forwarded by %s does not end its path with it", ErrRefusedByPolicy, peer)
	}
	return nil
}
