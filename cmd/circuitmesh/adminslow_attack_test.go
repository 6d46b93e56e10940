package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
)

// TestAttackSlowAdminClientsLockOutTheOperator: a process of the daemon's
// user (a script gone wrong, or one that means it) connects to the admin
// socket more than admin.MaxConns times, and on each connection sends a
// request header announcing a body of 60,000 bytes, then 11 bytes of it
// and nothing more. The daemon waited for the rest without end: every
// place of the admin API stayed taken, and `circuitmesh status` failed
// with "EOF" 0, 15 and 30 s later, for as long as the connections stayed
// open (the daemon held 256 of them, its goroutines and descriptors
// bounded). Now a request and its answer take at most
// admin.RequestTimeout (30 s): the daemon closes the slow connections
// and status answers again, while a `dial` circuit opened before keeps
// carrying bytes past that timeout.
func TestAttackSlowAdminClientsLockOutTheOperator(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a daemon and waits out the admin API's request timeout")
	}
	l := newLab(t, "e2e")
	a := l.start("a", "")
	circ, err := a.dial("a", "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer circ.Close()
	echo := func(b string) error {
		circ.SetDeadline(time.Now().Add(30 * time.Second))
		defer circ.SetDeadline(time.Time{})
		if _, err := io.WriteString(circ, b); err != nil {
			return err
		}
		got := make([]byte, len(b))
		if _, err := io.ReadFull(circ, got); err != nil {
			return err
		}
		if string(got) != b {
			return fmt.Errorf("echoed %q, want %q", got, b)
		}
		return nil
	}
	if err := echo("before"); err != nil {
		t.Fatal(err)
	}

	sock := filepath.Join(a.dir, adminSocketName)
	var slow []net.Conn
	defer func() {
		for _, c := range slow {
			c.Close()
		}
	}()
	start := time.Now()
	for range admin.MaxConns + 40 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		slow = append(slow, c)
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: circuitmesh\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{\"service\":", admin.PathExpose)
	}
	t.Logf("daemon with %d slow clients: %s", len(slow), procState(a.cmd.Process.Pid))
	var last string
	waitUntil(t, "`circuitmesh status` to answer beside the slow clients", func() bool {
		code, out := l.exitCode("status", "--data-dir", a.dir)
		if code == 0 && strings.Contains(out, "Node:") {
			return true
		}
		last = out
		return false
	})
	t.Logf("status answered %v after the slow clients connected (the last failure before: %q)", time.Since(start).Round(time.Second), strings.TrimSpace(last))

	// The daemon closed the slow connections: each reads its end (the
	// answer to the cut request, if any, then EOF).
	closed := 0
	for _, c := range slow {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, c); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			closed++
		}
	}
	if closed != len(slow) {
		t.Errorf("%d of %d slow connections still open", len(slow)-closed, len(slow))
	}
	if err := echo("after"); err != nil {
		t.Errorf("the dial circuit opened before the slow clients, %v later: %v", time.Since(start).Round(time.Second), err)
	}
}

// procState is a process's open descriptors and resident memory.
func procState(pid int) string {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return fmt.Sprintf("%d open descriptors, %d KiB resident", len(fds), residentBytes(pid)>>10)
}

// residentBytes is a process's resident memory (VmRSS), -1 if unknown.
func residentBytes(pid int) int64 {
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64); err == nil {
				return kb << 10
			}
		}
	}
	return -1
}
