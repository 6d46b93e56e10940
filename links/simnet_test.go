package links

import (
	"context"
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go/testutils/simnet"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// TestSimnetVirtualTime runs two real transports on quic-go's simulated
// network inside a synctest bubble: the measured RTT and cost follow the
// simulated latency, and a node that vanishes is declared dead within a
// second of virtual time.
func TestSimnetVirtualTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Certificates are issued inside the bubble: its clock starts in 2000.
		ca, err := identity.NewCA("sim", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		sn := &simnet.Simnet{Router: &simnet.PerfectRouter{}}
		settings := simnet.NodeBiDiLinkSettings{Latency: 10 * time.Millisecond} // one way, per receiver
		addrB := &net.UDPAddr{IP: net.ParseIP("10.0.0.2"), Port: 4000}
		ca1 := sn.NewEndpoint(&net.UDPAddr{IP: net.ParseIP("10.0.0.1"), Port: 4000}, settings)
		cb := sn.NewEndpoint(addrB, settings)
		if err := sn.Start(); err != nil {
			t.Fatal(err)
		}
		defer sn.Close()
		defer ca1.Close()

		recA, recB := newRecorder(), newRecorder()
		mk := func(name string, pc *simnet.SimConn, rec *recorder) *QUICTransport {
			id, err := ca.Issue(name, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := NewQUICTransport(QUICConfig{Identity: id, PacketConn: pc, Handler: rec, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			return tr
		}
		a := mk("a", ca1, recA)
		defer a.Close()
		b := mk("b", cb, recB)
		defer b.Close()

		la, err := a.Dial(context.Background(), addrB.String())
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		q := la.Quality()
		t.Logf("quality over simnet: %+v", q)
		if q.RTT < 19*time.Millisecond || q.RTT > 25*time.Millisecond || q.Cost < 1900 || q.Cost > 2600 {
			t.Fatalf("quality over a 20 ms RTT path: %+v", q)
		}

		// b vanishes: its socket closes without a goodbye.
		gone := time.Now()
		_ = cb.Close()
		<-la.Done()
		took := time.Since(gone)
		synctest.Wait() // LinkDown is delivered after Done closes
		if took > time.Second || !errors.Is(la.Err(), ErrLinkLost) {
			t.Fatalf("link down after %v (virtual) with %v", took, la.Err())
		}
		if ups, downs := recA.counts(); ups != 1 || downs != 1 {
			t.Fatalf("%d LinkUp, %d LinkDown", ups, downs)
		}
	})
}
