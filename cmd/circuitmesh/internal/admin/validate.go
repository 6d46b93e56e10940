package admin

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

// resolveTimeout bounds the name lookup of an expose target.
const resolveTimeout = 3 * time.Second

// ValidateService checks the name of a service given to expose or forward
// by the rule the node applies (circuit.ValidateService), so that every
// name a node can serve or dial can be exposed or forwarded. The command
// line's separators stay unambiguous under it: a peer name holds no '/'
// (PEER/SERVICE cuts at the first), a HOST:PORT no '=' (NAME=HOST:PORT
// cuts at the last) and a service name no ','. The error wraps
// ErrBadRequest.
func ValidateService(name string) error {
	if err := circuit.ValidateService(name); err != nil {
		return fmt.Errorf("%w: %w", err, ErrBadRequest)
	}
	return nil
}

// ValidateTarget checks the TCP address behind an exposed service: a host
// that resolves and a port from 1 to 65535. The error wraps ErrBadRequest.
func ValidateTarget(ctx context.Context, hostport string) error {
	host, err := ValidateHostPort(hostport, false)
	if err != nil {
		return err
	}
	return resolves(ctx, hostport, host)
}

// ValidateListenHost checks that the host of a forward's listen address
// resolves, as the host behind an exposed service must: an IP literal, a
// name that resolves, or none (:PORT, every address). It queries DNS, so
// it is kept apart from ValidateForward. The error wraps ErrBadRequest.
func ValidateListenHost(ctx context.Context, listen string) error {
	host, err := ValidateHostPort(listen, true)
	if err != nil || host == "" {
		return err
	}
	return resolves(ctx, listen, host)
}

// resolves checks that host, the host of hostport, is an IP literal or a
// name that resolves. The error wraps ErrBadRequest.
func resolves(ctx context.Context, hostport, host string) error {
	if net.ParseIP(host) != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	if _, err := net.DefaultResolver.LookupHost(ctx, host); err != nil {
		return fmt.Errorf("address %q: host %q does not resolve: %w", hostport, host, ErrBadRequest)
	}
	return nil
}

// ValidateHostPort checks HOST:PORT syntax, an IP literal that parses (a
// dotted quad such as 300.1.1.1 is not a host name) and a port from 1 to
// 65535, or 0 when allowZero (a listener that picks its port). It returns
// the host. The error wraps ErrBadRequest.
func ValidateHostPort(hostport string, allowZero bool) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("address %q: want HOST:PORT: %w", hostport, ErrBadRequest)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 || (p == 0 && !allowZero) {
		want := "1 to 65535"
		if allowZero {
			want = "0 to 65535"
		}
		return "", fmt.Errorf("address %q: port %q: want a number from %s: %w", hostport, port, want, ErrBadRequest)
	}
	if host != "" && net.ParseIP(host) == nil && looksNumeric(host) {
		return "", fmt.Errorf("address %q: %q is not a valid IP address: %w", hostport, host, ErrBadRequest)
	}
	return host, nil
}

// looksNumeric reports whether host is made of digits and dots only, so is
// meant as an IPv4 literal rather than a name.
func looksNumeric(host string) bool {
	for i := 0; i < len(host); i++ {
		if c := host[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// ValidateForward checks a forward: a listen HOST:PORT (port 0 picks one),
// a valid node name and a valid service name. The error wraps
// ErrBadRequest.
func ValidateForward(listen, peer, service string) error {
	if _, err := ValidateHostPort(listen, true); err != nil {
		return err
	}
	if err := identity.ValidateName(peer); err != nil {
		return fmt.Errorf("peer: %w: %w", err, ErrBadRequest)
	}
	return ValidateService(service)
}

// validatePeer checks the name of a node to ping or dial by the node's
// rules (identity.ValidateName) before anything is sent, so that a name no
// node can have is answered 400 with a short error that quotes at most
// its beginning. The error wraps ErrBadRequest.
func validatePeer(name string) error {
	if err := identity.ValidateName(name); err != nil {
		return fmt.Errorf("peer: %w: %w", err, ErrBadRequest)
	}
	return nil
}
