package node

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestAttackOneSourceFillsServiceBacklog: d runs a service whose
// application does not accept for now (a slow or starved one). m, a
// member with a valid certificate, opens Backlog circuits to it and holds
// them. Before, m's circuits took the whole backlog and h's circuit to the
// service was refused overloaded; now, once the backlog is half full, a
// source holding a quarter of it is refused, m holds half of it, and h's
// circuit is queued and reaches the application.
func TestAttackOneSourceFillsServiceBacklog(t *testing.T) {
	c := newCluster(t, true)
	c.build("m-d", "h-d")
	c.waitRoute("m", "d", 1)
	c.waitRoute("h", "d", 1)
	ln, err := c.nodes["d"].Listen("svc")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	defer func() {
		for _, cn := range held {
			cn.Close()
		}
	}()
	refused := 0
	for range Backlog {
		cn, err := c.nodes["m"].Dial(ctxT(t, 10*time.Second), "d", "svc")
		if err != nil {
			if !errors.Is(err, circuit.ErrOverloaded) {
				t.Fatalf("m's circuit: %v, want accepted or overloaded", err)
			}
			refused++
			continue
		}
		held = append(held, cn)
	}
	hc, err := c.nodes["h"].Dial(ctxT(t, 10*time.Second), "d", "svc")
	t.Logf("m holds %d circuits in the backlog of %d (%d refused); h's circuit: %v", len(held), Backlog, refused, err)
	if len(held) < Backlog/2 {
		t.Fatalf("m holds %d circuits in the backlog, want at least %d: the attack did not run", len(held), Backlog/2)
	}
	if err != nil {
		t.Fatalf("h's circuit to d's service while m fills its backlog: %v", err)
	}
	defer hc.Close()
	for range len(held) + 1 {
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		sc.Close()
		if sc.RemoteAddr().(circuit.Addr).Node == "h" {
			return
		}
	}
	t.Fatal("h's circuit never reached the service")
}
