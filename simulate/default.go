package simulate

import _ "embed"

// DefaultScript is the diamond failover demo (testdata/diamond-failover.sim),
// run by `circuitmesh simulate` without a script.
//
//go:embed testdata/diamond-failover.sim
var DefaultScript string

// DefaultScriptName names DefaultScript in reports.
const DefaultScriptName = "diamond-failover.sim"
