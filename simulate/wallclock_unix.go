//go:build linux || darwin || freebsd || netbsd || openbsd

package simulate

import (
	"time"

	"golang.org/x/sys/unix"
)

// wallNow reads the machine's monotonic clock by a system call. Unlike
// time.Now it is not replaced by virtual time inside a testing/synctest
// bubble, so a run in virtual time can report how long it really took.
func wallNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
