package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

// TestAbstractSocketAndBadNames: a socket in the abstract namespace
// (@name, as systemd may give) gets the datagram; unset, nothing is sent
// and nothing fails; a name that is no unix socket path is a typed error.
func TestAbstractSocketAndBadNames(t *testing.T) {
	name := fmt.Sprintf("@circuitmesh-sdnotify-test-%d", os.Getpid())
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("NOTIFY_SOCKET", name)
	if err := Ready("up\non two lines"); err != nil {
		t.Fatal(err)
	}
	ln.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 256)
	n, err := ln.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(buf[:n]), "READY=1\nSTATUS=up on two lines"; got != want {
		t.Errorf("sent %q, want %q", got, want)
	}

	t.Setenv("NOTIFY_SOCKET", "")
	if err := Stopping(); err != nil {
		t.Errorf("with NOTIFY_SOCKET unset: %v, want nothing done", err)
	}
	t.Setenv("NOTIFY_SOCKET", "vsock:2:1")
	if err := Stopping(); !errors.Is(err, ErrSocket) {
		t.Errorf("NOTIFY_SOCKET=vsock:2:1: %v, want ErrSocket", err)
	}
}
