// Package earlyhup asks for SIGHUP as the process starts, in its init,
// before the heavier packages' inits and the command line's parsing. Until
// a Go program asks for SIGHUP, SIGHUP ends it, and the daemon is reloaded
// with SIGHUP (systemd's ExecReload) as soon as its start returns: a
// reload sent while it starts must wait in C, not kill it. Package main
// imports it; a command that does not reload calls Release.
package earlyhup

import (
	"os"
	"os/signal"
	"syscall"
)

// C gets SIGHUP from the process's start on. It is buffered: SIGHUPs that
// come before the daemon reads it make one reload.
var C = make(chan os.Signal, 1)

func init() { signal.Notify(C, syscall.SIGHUP) }

// Release gives SIGHUP back its default action (ending the process), for
// a command that does not reload, and delivers again a SIGHUP that came
// meanwhile.
func Release() {
	signal.Stop(C)
	select {
	case <-C:
		signal.Reset(syscall.SIGHUP)
		_ = syscall.Kill(os.Getpid(), syscall.SIGHUP)
	default:
	}
}
