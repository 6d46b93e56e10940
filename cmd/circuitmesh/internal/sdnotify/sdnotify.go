// Package sdnotify tells the service manager that started the daemon
// (systemd, for a unit of Type=notify or notify-reload) what state it is
// in: the datagrams of sd_notify(3) to the socket $NOTIFY_SOCKET names.
// Where the variable is unset, as outside such a unit, it does nothing.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrSocket is returned, wrapped, when $NOTIFY_SOCKET names no socket
// this package can write to (vsock addresses are not supported).
var ErrSocket = errors.New("NOTIFY_SOCKET")

// Ready says the daemon is up and handles reloads; status is a line for
// `systemctl status`. A unit of Type=notify is started only then, and
// systemd runs its ExecReload only after.
func Ready(status string) error { return send("READY=1\nSTATUS=" + oneLine(status)) }

// Reloading says a reload began; Ready says it ended. A unit of
// Type=notify-reload waits for both.
func Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("sd_notify: monotonic clock: %w", err)
	}
	return send("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(ts.Nano()/1000, 10))
}

// Stopping says the daemon is shutting down.
func Stopping() error { return send("STOPPING=1") }

// send writes one datagram of state to $NOTIFY_SOCKET, if set.
func send(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] != '/' && path[0] != '@' {
		return fmt.Errorf("sd_notify: %w %q is not a unix socket path", ErrSocket, path)
	}
	// A name starting with @ is in the abstract namespace, as net
	// takes it.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w %s: %w", ErrSocket, path, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: write to %s: %w", path, err)
	}
	return nil
}

// oneLine keeps a status a single line: a newline would start another
// assignment.
var oneLine = strings.NewReplacer("\n", " ", "\r", " ").Replace
