package links

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

func TestLinkUp(t *testing.T) {
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) { c.Features = 0x5 })
	b := newNode(t, issue(t, ca, "b"), func(c *QUICConfig) { c.Role = RoleLeaf })
	la := dial(t, a, b)
	b.rec.waitEvent(t, "up", patience)
	if la.Peer() != "b" || la.PeerRole() != RoleLeaf || !la.Outbound() {
		t.Fatalf("dialler sees peer %q role %v outbound %v", la.Peer(), la.PeerRole(), la.Outbound())
	}
	lb := b.Link("a")
	if lb == nil || lb.Peer() != "a" || lb.PeerFeatures() != 0x5 || lb.Outbound() {
		t.Fatalf("acceptor sees %v", lb)
	}
	if q := la.Quality(); q.Cost < MinCost || q.RTT <= 0 {
		t.Fatalf("quality after handshake: %+v", q)
	}
	// A second dial returns the same link.
	if again := dial(t, a, b); again != la {
		t.Fatal("second dial made a new link")
	}
	// Routing payloads arrive in order.
	for _, p := range []string{"one", "two"} {
		if err := la.SendRouting([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "routing payloads", patience, func() bool {
		b.rec.mu.Lock()
		defer b.rec.mu.Unlock()
		return len(b.rec.routed) == 2
	})
	if string(b.rec.routed[0]) != "one" || string(b.rec.routed[1]) != "two" {
		t.Fatalf("routed %q", b.rec.routed)
	}
	if err := la.SendRouting(make([]byte, MaxFrameSize+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized payload: %v", err)
	}
	// Close says goodbye: both sides see LinkDown once, with the reason.
	if err := la.Close("maintenance"); err != nil {
		t.Fatal(err)
	}
	b.rec.waitEvent(t, "down", patience)
	a.rec.waitEvent(t, "down", patience)
	if err := lb.Err(); !errors.Is(err, ErrLinkLost) || !contains(err, "maintenance") {
		t.Fatalf("peer's link error: %v", err)
	}
	if err := la.Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("local link error: %v", err)
	}
	if err := la.SendRouting([]byte("late")); err == nil {
		t.Fatal("SendRouting on a closed link succeeded")
	}
	if ups, downs := b.rec.counts(); ups != 1 || downs != 1 {
		t.Fatalf("acceptor saw %d ups %d downs", ups, downs)
	}
	if n := len(a.Links()); n != 0 {
		t.Fatalf("%d links left after close", n)
	}
}

func contains(err error, s string) bool {
	return err != nil && len(s) > 0 && stringsContains(err.Error(), s)
}

func TestListenAddressInUse(t *testing.T) {
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), nil)
	_, err := NewQUICTransport(QUICConfig{Identity: issue(t, ca, "b"), Handler: newRecorder(),
		ListenAddr: a.LocalAddr().String(), Logger: quietLogger()})
	if err == nil || !contains(err, "address already in use") || !contains(err, a.LocalAddr().String()) {
		t.Fatalf("second listener on %s: %v", a.LocalAddr(), err)
	}
}

func TestConfigValidation(t *testing.T) {
	ca := testCA(t, "m")
	id := issue(t, ca, "a")
	for name, cfg := range map[string]QUICConfig{
		"no identity": {Handler: newRecorder()},
		"no handler":  {Identity: id},
		"low cost":    {Identity: id, Handler: newRecorder(), StaticCost: map[string]Cost{"b": 1}},
		"bad role":    {Identity: id, Handler: newRecorder(), Role: 9},
		"link window below 4 stream windows": {Identity: id, Handler: newRecorder(),
			MaxStreamWindow: 1 << 20, LinkWindow: 3 << 20},
		"negative reader stall": {Identity: id, Handler: newRecorder(), ReaderStall: -1},
	} {
		if _, err := NewQUICTransport(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	q, err := QUICConfig{}.QUIC()
	if err != nil {
		t.Fatalf("default quic config: %v", err)
	}
	if q.MaxIncomingStreams != DefaultMaxStreams+1 || q.MaxStreamReceiveWindow != DefaultMaxStreamWindow ||
		q.MaxConnectionReceiveWindow != DefaultLinkWindow || q.KeepAlivePeriod == 0 {
		t.Fatalf("default quic config %+v", q)
	}
}

// TestWindowsQUICCannotSendRefused: a LinkWindow above MaxLinkWindow
// (2^62 - 1), or a MaxStreamWindow above a quarter of it, was taken by
// NewQUICTransport, and quic-go panicked the process at the first link's
// handshake. Now NewQUICTransport refuses them with ErrConfig naming the
// field, and takes the largest.
func TestWindowsQUICCannotSendRefused(t *testing.T) {
	ca := testCA(t, "m")
	id := issue(t, ca, "a")
	for name, c := range map[string]struct {
		stream, link uint64
		field        string
	}{
		"link window 2^62":                         {0, 1 << 62, "LinkWindow"},
		"link window 2^64 - 1":                     {0, 1<<64 - 1, "LinkWindow"},
		"stream window 2^62, link window default":  {1 << 62, 0, "MaxStreamWindow"},
		"stream window above a quarter of the max": {MaxLinkWindow/4 + 1, MaxLinkWindow, "MaxStreamWindow"},
	} {
		tr, err := NewQUICTransport(QUICConfig{Identity: id, Handler: newRecorder(), Logger: quietLogger(),
			MaxStreamWindow: c.stream, LinkWindow: c.link})
		if err == nil {
			tr.Close()
		}
		if !errors.Is(err, ErrConfig) || !contains(err, c.field) {
			t.Errorf("%s: %v, want ErrConfig naming %s", name, err, c.field)
		}
	}
	tr, err := NewQUICTransport(QUICConfig{Identity: id, Handler: newRecorder(), Logger: quietLogger(),
		MaxStreamWindow: MaxLinkWindow / 4, LinkWindow: MaxLinkWindow})
	if err != nil {
		t.Fatalf("the largest windows: %v", err)
	}
	tr.Close()
}

// outOfRangeLimits are configurations whose limits or windows QUIC cannot
// carry, each with the field its refusal names.
var outOfRangeLimits = map[string]struct {
	cfg   QUICConfig
	field string
}{
	"link window 2^62":                   {QUICConfig{LinkWindow: 1 << 62}, "LinkWindow"},
	"stream window 2^62":                 {QUICConfig{MaxStreamWindow: 1 << 62}, "MaxStreamWindow"},
	"stream window below the minimum":    {QUICConfig{MaxStreamWindow: MinStreamWindow - 1}, "MaxStreamWindow"},
	"link window below 4 stream windows": {QUICConfig{MaxStreamWindow: 1 << 20, LinkWindow: 3 << 20}, "LinkWindow"},
	"max streams 2^60":                   {QUICConfig{MaxStreams: 1 << 60}, "MaxStreams"},
	"max streams the largest int":        {QUICConfig{MaxStreams: math.MaxInt}, "MaxStreams"},
	"negative max streams":               {QUICConfig{MaxStreams: -1}, "negative"},
}

// TestQUICConfigRefusesWhatTheTransportRefuses: QUICConfig.QUIC, the
// quic-go configuration of a plain quic-go baseline, fails with ErrConfig
// naming the field for the limits and windows NewQUICTransport refuses.
// Before, it returned a configuration for any of them: with a LinkWindow
// of 2^62 quic-go panicked the process at the handshake, and a
// MaxStreams of the largest int became a negative stream limit, no
// stream at all. NewQUICTransport refuses a MaxStreams above
// MaxMaxStreams too (it took 2^60, which quic-go cut to 2^60 - 1 circuit
// streams, and the largest int, with which no link came up), and both
// take the largest values in range.
func TestQUICConfigRefusesWhatTheTransportRefuses(t *testing.T) {
	ca := testCA(t, "m")
	id := issue(t, ca, "a")
	for name, c := range outOfRangeLimits {
		if q, err := c.cfg.QUIC(); !errors.Is(err, ErrConfig) || !contains(err, c.field) {
			t.Errorf("%s: QUIC() = %v, %v; want ErrConfig naming %s", name, q != nil, err, c.field)
		}
		cfg := c.cfg
		cfg.Identity, cfg.Handler, cfg.Logger = id, newRecorder(), quietLogger()
		tr, err := NewQUICTransport(cfg)
		if err == nil {
			tr.Close()
		}
		if !errors.Is(err, ErrConfig) || !contains(err, c.field) {
			t.Errorf("%s: NewQUICTransport: %v, want ErrConfig naming %s", name, err, c.field)
		}
	}
	largest := QUICConfig{MaxStreams: MaxMaxStreams, MaxStreamWindow: MaxLinkWindow / 4, LinkWindow: MaxLinkWindow}
	q, err := largest.QUIC()
	if err != nil || q.MaxIncomingStreams != 1<<60 || q.MaxConnectionReceiveWindow != MaxLinkWindow {
		t.Fatalf("the largest values: QUIC() = %+v, %v", q, err)
	}
	largest.Identity, largest.Handler, largest.Logger = id, newRecorder(), quietLogger()
	tr, err := NewQUICTransport(largest)
	if err != nil {
		t.Fatalf("the largest values: NewQUICTransport: %v", err)
	}
	tr.Close()
}

func TestDialClosedTransport(t *testing.T) {
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), nil)
	b := newNode(t, issue(t, ca, "b"), nil)
	_ = a.Close()
	_, err := a.Dial(context.Background(), b.LocalAddr().String())
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("dial on closed transport: %v", err)
	}
}

// TestSilentPeerTimesOut dials with plain quic-go and never sends a hello:
// the acceptor gives up after HandshakeTimeout, without a refusal report.
func TestSilentPeerTimesOut(t *testing.T) {
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) { c.HandshakeTimeout = 300 * time.Millisecond })
	b := newNode(t, issue(t, ca, "b"), nil)
	conn, err := b.tr.Dial(context.Background(), a.LocalAddr(), b.tlsConf, b.quicConf)
	if err != nil {
		t.Fatal(err)
	}
	// The bound only keeps a broken acceptor from hanging the test: the
	// acceptor gives up after 300 ms, but on a loaded machine under -race
	// its close can reach b seconds later (3 s was once too short at a
	// load average of 23). b sends keep-alives, so nothing else ends it.
	select {
	case <-conn.Context().Done():
	case <-time.After(30 * time.Second):
		t.Fatal("silent connection still open after 30 s")
	}
	select {
	case err := <-a.refused:
		t.Fatalf("timeout reported as a refusal: %v", err)
	default:
	}
	if len(a.Links()) != 0 {
		t.Fatal("silent peer got a link")
	}
}
