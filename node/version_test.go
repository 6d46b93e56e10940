package node

import (
	"runtime/debug"
	"testing"
)

// The version and commit come from what Go stamped into the binary: the
// module's version (a pseudo-version from the VCS, or a tag when built as
// a dependency) and the VCS revision, cut to 12 digits and marked when the
// tree had changes.
func TestBuildReadsModuleVersionAndCommit(t *testing.T) {
	stamped := func(version string, settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/circuitmesh/circuitmesh", Version: version}}
		for i := 0; i+1 < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	rev := "02983fce3d5773b2bb1c2e0c4e8d9b1d0d9a4c11"
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want BuildInfo
	}{
		{"a clean clone", stamped("v0.0.0-20261201185017-02983fce3d57", "vcs", "git", "vcs.revision", rev, "vcs.modified", "false"), true,
			BuildInfo{Version: "v0.0.0-20261201185017-02983fce3d57", Commit: "02983fce3d57"}},
		{"changes in the tree", stamped("v0.0.0-20261201185017-02983fce3d57+dirty", "vcs.revision", rev, "vcs.modified", "true"), true,
			BuildInfo{Version: "v0.0.0-20261201185017-02983fce3d57+dirty", Commit: "02983fce3d57+dirty"}},
		{"a tagged dependency", stamped("v1.2.3"), true, BuildInfo{Version: "v1.2.3"}},
		{"no VCS stamp", stamped(""), true, BuildInfo{Version: "(devel)"}},
		{"nothing recorded", nil, false, BuildInfo{Version: "unknown"}},
		{"embedded in another program", &debug.BuildInfo{
			Main:     debug.Module{Path: "example.com/app", Version: "v9.0.0"},
			Deps:     []*debug.Module{{Path: "example.com/other", Version: "v0.1.0"}, {Path: "github.com/circuitmesh/circuitmesh", Version: "v1.4.0"}},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}},
		}, true, BuildInfo{Version: "v1.4.0"}},
		{"embedded, replaced by a local copy", &debug.BuildInfo{
			Main: debug.Module{Path: "example.com/app", Version: "(devel)"},
			Deps: []*debug.Module{{Path: "github.com/circuitmesh/circuitmesh", Version: "v1.4.0", Replace: &debug.Module{Path: "../circuitmesh"}}},
		}, true, BuildInfo{Version: "v1.4.0"}},
	} {
		if got := buildFrom(tc.bi, tc.ok); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
