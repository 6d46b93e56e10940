package links

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go/testutils/simnet"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// TestAttackDuplicateNameRacesTheEstablishedDial: two live nodes named b
// (each with a valid certificate of its own key) dial z at the same
// moment, before z has a link to either (on a simulated network, in
// virtual time, so that the two handshakes overlap every run). Both pass
// z's duplicate-name check, as neither is linked when it runs; the first
// to get through is the established one, and the other must be refused
// as every second node named b is, with a WARN at z. Before, z adopted
// both: the two handshakes, each taken for the other's winner, waited on
// each other until the handshake timeout, then the one adopted second
// replaced the first ("replaced by a link to the restarted peer", at
// Debug): the name changed hands without a WARN and both dials succeeded.
func TestAttackDuplicateNameRacesTheEstablishedDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Certificates are issued inside the bubble: its clock starts in 2000.
		ca, err := identity.NewCA("m", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		sn := &simnet.Simnet{Router: &simnet.PerfectRouter{}}
		settings := simnet.NodeBiDiLinkSettings{Latency: 10 * time.Millisecond}
		addr := func(i byte) *net.UDPAddr { return &net.UDPAddr{IP: net.IPv4(10, 0, 0, i), Port: 4000} }
		pcs := []*simnet.SimConn{sn.NewEndpoint(addr(1), settings), sn.NewEndpoint(addr(2), settings), sn.NewEndpoint(addr(3), settings)}
		if err := sn.Start(); err != nil {
			t.Fatal(err)
		}
		defer sn.Close()
		var zlog logBuf
		mk := func(name string, pc *simnet.SimConn, log *logBuf) *node {
			id, err := ca.Issue(name, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			n := &node{rec: newRecorder()}
			cfg := QUICConfig{Identity: id, PacketConn: pc, Handler: n.rec, Logger: quietLogger()}
			if log != nil {
				cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
			}
			if n.QUICTransport, err = NewQUICTransport(cfg); err != nil {
				t.Fatal(err)
			}
			return n
		}
		z := mk("z", pcs[0], &zlog)
		b1 := mk("b", pcs[1], nil)
		b2 := mk("b", pcs[2], nil)
		defer func() {
			for _, n := range []*node{b1, b2, z} {
				_ = n.Close()
			}
			for _, pc := range pcs {
				_ = pc.Close()
			}
		}()

		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, b := range []*node{b1, b2} {
			wg.Go(func() { _, errs[i] = b.Dial(context.Background(), addr(1).String()) })
		}
		wg.Wait()
		time.Sleep(time.Minute) // virtual: past the handshake timeout
		synctest.Wait()
		if ups, downs := z.rec.counts(); ups != 1 || downs != 0 {
			t.Errorf("z saw %d LinkUp and %d LinkDown for b, want the established link's LinkUp alone", ups, downs)
		}
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Errorf("want one dial linked and the other refused, got %v and %v", errs[0], errs[1])
		}
		if got := zlog.lines("link refused", "duplicate node name"); len(got) != 1 {
			t.Errorf("z logged %d WARN lines refusing the second node named b, want 1", len(got))
		}
		for i, err := range errs {
			if err != nil && (!errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), `another node named "b"`)) {
				t.Errorf("dial of b%d: %v, want a refusal for the duplicate name", i+1, err)
			}
		}
	})
}
