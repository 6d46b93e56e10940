package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
)

// TestManyDialCircuitsLeaveRoomForTheOperator: an operator tunnels
// connections with `circuitmesh dial` (ssh's ProxyCommand, one per
// session) until the admin API holds as many as it takes. Dial circuits
// and requests shared its 256 places: the 257th dial failed with
// "connection reset by peer", and `circuitmesh status` with "EOF" and
// `circuitmesh reload` with "broken pipe" for as long as the circuits
// stayed open, none saying why. Now dial circuits take at most
// admin.MaxDialCircuits of the places: the next dial is refused with
// that bound named (admin.ErrBusy), and status and reload answer.
func TestManyDialCircuitsLeaveRoomForTheOperator(t *testing.T) {
	if testing.Short() {
		t.Skip("runs daemons")
	}
	l := newLab(t, "e2e")
	a := l.start("a", "")
	l.start("b", "", "--link", a.addr)
	a.waitRoute(t, "b", anyRoute)
	var open []*admin.Circuit
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	var refusal error
	for len(open) < admin.MaxConns {
		c, err := a.dial("b", "echo")
		if err != nil {
			refusal = err
			break
		}
		open = append(open, c)
		if _, err := io.WriteString(c, "x"); err != nil {
			t.Fatalf("circuit %d: %v", len(open), err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatalf("circuit %d: %v", len(open), err)
		}
	}
	t.Logf("%d dial circuits open, the next refused: %v", len(open), refusal)
	if len(open) != admin.MaxDialCircuits || !errors.Is(refusal, admin.ErrBusy) || !strings.Contains(refusal.Error(), "dial circuits") {
		t.Errorf("%d dial circuits opened, then %v; want %d, then a refusal naming the bound", len(open), refusal, admin.MaxDialCircuits)
	}
	for _, cmd := range [][]string{{"status"}, {"reload"}} {
		if code, out := l.exitCode(append(cmd, "--data-dir", a.dir)...); code != 0 {
			t.Errorf("`circuitmesh %s` beside %d dial circuits: exit %d: %s", cmd[0], len(open), code, out)
		}
	}
	code, out := l.exitCode("dial", "b", "echo", "--data-dir", a.dir)
	if code != 1 || !strings.Contains(out, "dial circuits") {
		t.Errorf("`circuitmesh dial` at the bound: exit %d: %q; want 1 and the bound named", code, out)
	}
	// A place freed is taken again.
	open[0].Close()
	open = open[1:]
	waitUntil(t, "a dial once a circuit closed", func() bool {
		c, err := a.dial("b", "echo")
		if err == nil {
			open = append(open, c)
		}
		return err == nil
	})
}

// dial opens a circuit to peer's service through d's admin socket.
func (d *daemon) dial(peer, service string) (*admin.Circuit, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return d.client().Dial(ctx, peer, service)
}
