package node

import (
	"runtime/debug"
	"sync"
)

// BuildInfo describes the binary a node runs in.
type BuildInfo struct {
	// Version is the main module's version, "(devel)" for a build from a
	// work tree.
	Version string
	// Commit is the VCS revision Go recorded (12 hex digits, "+dirty" when
	// the tree had changes), or "".
	Commit string
}

var buildOnce = sync.OnceValue(func() BuildInfo { return buildFrom(debug.ReadBuildInfo()) })

// buildFrom is the BuildInfo of the binary Go described in bi (ok false:
// Go recorded nothing).
func buildFrom(bi *debug.BuildInfo, ok bool) BuildInfo {
	if !ok {
		return BuildInfo{Version: "unknown"}
	}
	b := BuildInfo{Version: bi.Main.Version}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(b.Commit) > 12 {
		b.Commit = b.Commit[:12]
	}
	if dirty && b.Commit != "" {
		b.Commit += "+dirty"
	}
	return b
}

// Build returns the version and commit of the running binary.
func Build() BuildInfo { return buildOnce() }
