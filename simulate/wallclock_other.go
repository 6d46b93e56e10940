//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package simulate

import "time"

var wallStart = time.Now()

// wallNow is the time since the process started. Inside a
// testing/synctest bubble it advances with virtual time: wall times are
// then not reported correctly on this platform.
func wallNow() time.Duration { return time.Since(wallStart) }
