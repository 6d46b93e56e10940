package main

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
	"github.com/circuitmesh/circuitmesh/node"
)

// TestSecondSignalDuringDrainEndsTheDaemon: on SIGTERM/SIGINT the
// daemon drains for --drain-timeout while circuits are open; a second
// signal (a second Ctrl-C) ends the drain at once: the daemon cuts what
// is open and exits, rather than wait out the whole drain (here 60 s).
func TestSecondSignalDuringDrainEndsTheDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a daemon")
	}
	l := newLab(t, "e2e")
	a := l.start("a", "", "--drain-timeout", "60s")
	o := l.openDial(t, a, "a", "echo")
	o.echo(t, "hello")
	stopTwice(t, a)
	if !strings.Contains(a.log.String(), "stopped without finishing the drain") {
		t.Fatalf("after a second signal: the cut drain not reported:\n%s", a.log.String())
	}
}

// stopTwice sends d SIGTERM, then SIGINT once it drains, and waits for
// it to exit with status 1 (the drain was cut, circuits with it, as
// documented) well before its drain timeout of 60 s.
func stopTwice(t *testing.T, d *daemon) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.waitLog(t, 1, "node draining")
	d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still draining 10 s after a second signal (drain timeout 60 s)", d.name)
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("after a second signal %s exited with status %d, want 1:\n%s", d.name, code, d.log.String())
	}
}

// TestSecondSignalStillSaysGoodbye: a second signal cuts the drain, but
// the daemon still closes its links with a goodbye, so that its
// neighbours drop their links to it at once rather than after they find
// it silent. Here the daemon relays a circuit between its two neighbours
// (a circuit only the node, not the daemon's tunnels, can cut).
func TestSecondSignalStillSaysGoodbye(t *testing.T) {
	l := newLab(t, "e2e")
	a := l.start("a", "")
	v := l.start("v", "", "--link", a.addr, "--drain-timeout", "60s")
	c := l.start("c", "", "--link", v.addr)
	a.waitRoute(t, "c", func(p node.PeerInfo) bool { return p.NextHop == v.name })
	o := l.openDial(t, a, "c", "echo")
	o.echo(t, "through v")

	stopTwice(t, v)
	for _, nb := range []*daemon{a, c} {
		nb.waitLog(t, 1, `msg="link down"`, "peer=v", "peer said goodbye")
		waitUntil(t, nb.name+" to drop its link to v", func() bool {
			var ls []node.LinkInfo
			if err := nb.client().Get(context.Background(), admin.PathLinks, nil, &ls); err != nil {
				return false
			}
			return !slices.ContainsFunc(ls, func(li node.LinkInfo) bool { return li.Peer == v.name })
		})
	}
}
