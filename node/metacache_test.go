package node

import "testing"

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
