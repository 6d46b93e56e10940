package node

import (
	"errors"
	"testing"
)

func TestMemberLinkAddrCanonical(t *testing.T) {
	for _, s := range []string{"127.0.0.1:7000", "10.1.2.3:1", "[2001:db8::1]:443", "[::1]:65535"} {
		if err := checkLinkAddr(s); err != nil {
			t.Errorf("%q refused: %v", s, err)
		}
	}
	for _, s := range []string{
		"", "localhost:7000", "node.example:7000", "127.0.0.1", "127.0.0.1:0007000", "127.0.0.1:+7000",
		"127.000.0.1:7000", "[::ffff:127.0.0.1]:7000", "[2001:DB8::1]:443", "[2001:db8:0::1]:443",
		"[fe80::1%eth0]:7000", "0.0.0.0:7000", "[::]:7000", "224.0.0.1:7000", "255.255.255.255:7000",
		"127.0.0.1:0", "127.0.0.1:65536", " 127.0.0.1:7000",
	} {
		if err := checkLinkAddr(s); !errors.Is(err, errBadMeta) {
			t.Errorf("%q: %v, want a refusal", s, err)
		}
	}
}
