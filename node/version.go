package node

import (
	"runtime/debug"
	"sync"
)

// BuildInfo describes the binary a node runs in.
type BuildInfo struct {
	// Version is the version of module github.com/circuitmesh/circuitmesh
	// in the binary: the main module's, or the dependency's when another
	// program embeds it; "(devel)" for a build from a work tree.
	Version string
	// Commit is the VCS revision Go recorded (12 hex digits, "+dirty" when
	// the tree had changes) when circuitmesh is the main module, or "".
	Commit string
}

// modulePath is this module's path.
const modulePath = "github.com/circuitmesh/circuitmesh"

var buildOnce = sync.OnceValue(func() BuildInfo { return buildFrom(debug.ReadBuildInfo()) })

// buildFrom is the BuildInfo of the binary Go described in bi (ok false:
// Go recorded nothing).
func buildFrom(bi *debug.BuildInfo, ok bool) BuildInfo {
	if !ok {
		return BuildInfo{Version: "unknown"}
	}
	if bi.Main.Path != modulePath { // embedded: the revision Go recorded is the program's
		for _, d := range bi.Deps {
			if d.Path == modulePath {
				b := BuildInfo{Version: d.Version}
				if d.Replace != nil && d.Replace.Version != "" {
					b.Version = d.Replace.Version
				}
				if b.Version == "" {
					b.Version = "(devel)"
				}
				return b
			}
		}
		return BuildInfo{Version: "(devel)"}
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
