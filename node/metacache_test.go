package node

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

// A member's metadata is parsed again whenever its bytes differ from the
// last ones parsed, also when it goes back to earlier bytes.
func TestMetaCacheFollowsTheBytes(t *testing.T) {
	var c metaCache
	first := []byte(`{"link":"10.0.0.1:1","mesh":"m"}`)
	second := []byte(`{"link":"10.0.0.2:1","mesh":"m"}`)
	for i, tc := range []struct {
		raw  []byte
		link string
		bad  bool
	}{
		{first, "10.0.0.1:1", false},
		{first, "10.0.0.1:1", false},
		{second, "10.0.0.2:1", false},
		{[]byte("\x00garbage"), "", true},
		{first, "10.0.0.1:1", false},
	} {
		meta, err := c.parse("b", tc.raw)
		if (err != nil) != tc.bad || meta.Link != tc.link {
			t.Errorf("parse %d (%q) = %q, %v; want link %q, error %v", i, tc.raw, meta.Link, err, tc.link, tc.bad)
		}
	}
	if meta, _ := c.parse("c", second); meta.Link != "10.0.0.2:1" {
		t.Errorf("another member's parse = %q, want its own metadata", meta.Link)
	}
	c.forget("b")
	if _, ok := c.m["b"]; ok {
		t.Error("a member that left is still cached")
	}
}

// Alive messages for made-up names that NotifyAlive refuses (here: of
// another mesh) leave nothing in the metadata cache: memberlist never
// takes those names, so no leave would ever remove them (65,536 such
// messages held 106 MB when the cache took every name parsed).
func TestRefusedAliveMessagesAreNotCached(t *testing.T) {
	c := newCluster(t, true)
	a := forgeMesh(t, c, []byte(strings.Repeat("k", 32)), "a")[0]
	body, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "other"})
	for i := range 1000 {
		if err := a.disco.NotifyAlive(&memberlist.Node{Addr: loopback4, Name: fmt.Sprintf("junk%04d", i), Meta: body}); err == nil {
			t.Fatalf("alive message of another mesh taken")
		}
	}
	a.disco.metas.mu.Lock()
	n := len(a.disco.metas.m)
	a.disco.metas.mu.Unlock()
	if n != 0 {
		t.Errorf("1000 refused alive messages left %d names in the metadata cache", n)
	}
}
