package links

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// linkEvents is a Handler that records LinkUp and LinkDown in the order
// the transport delivers them.
type linkEvents struct {
	mu  sync.Mutex
	evs []linkEvent
}

type linkEvent struct {
	up bool
	l  Link
}

func (e *linkEvents) add(up bool, l Link) {
	e.mu.Lock()
	e.evs = append(e.evs, linkEvent{up, l})
	e.mu.Unlock()
}

func (e *linkEvents) LinkUp(l Link)             { e.add(true, l) }
func (e *linkEvents) LinkDown(l Link, _ error)  { e.add(false, l) }
func (e *linkEvents) Routing(Link, []byte)      {}
func (e *linkEvents) CostChanged(Link, Quality) {}
func (e *linkEvents) list() []linkEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]linkEvent(nil), e.evs...)
}
func (e *linkEvents) has(up bool, l Link) bool { return e.index(up, l) >= 0 }
func (e *linkEvents) index(up bool, l Link) int {
	for i, ev := range e.list() {
		if ev.up == up && ev.l == l {
			return i
		}
	}
	return -1
}

// upGate is a slog.Handler that holds the first "link up" record until
// opened: the transport logs it after registering a link and before
// delivering its LinkUp, so the gate holds that link's adoption there.
type upGate struct {
	once    sync.Once
	held    chan struct{} // closed when the first "link up" is held
	release chan struct{}
	openOne sync.Once
}

func newUpGate() *upGate {
	return &upGate{held: make(chan struct{}), release: make(chan struct{})}
}

func (g *upGate) open() { g.openOne.Do(func() { close(g.release) }) }

func (g *upGate) Enabled(context.Context, slog.Level) bool { return true }
func (g *upGate) WithAttrs([]slog.Attr) slog.Handler       { return g }
func (g *upGate) WithGroup(string) slog.Handler            { return g }
func (g *upGate) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "link up" {
		return nil
	}
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.held)
		<-g.release
	}
	return nil
}

// A link that replaces another one whose adoption has not delivered its
// LinkUp yet waits for it: the handler hears LinkUp of the replaced link,
// then LinkUp of its replacement, then LinkDown of the replaced link, never
// an up after the replacement's up. A handler that keeps the link it was
// last told is up to each peer, and drops it on that link's down, holds
// the live link.
//
// b, reachable at two addresses, dials a; a's adoption of that link is
// held after the link is registered and before its LinkUp. Meanwhile a
// dials b at b's other address: that link is preferred (dialled by the
// smaller name) and replaces the first one.
func TestReplacedLinkUpComesBeforeTheReplacement(t *testing.T) {
	ca := testCA(t, "m")
	gate := newUpGate()
	var ev linkEvents
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) {
		c.Handler = &ev
		c.Logger = slog.New(gate)
		tolerant(c)
	})
	b := newNode(t, issue(t, ca, "b"), func(c *QUICConfig) {
		c.ListenAddr = "0.0.0.0:0" // reachable at 127.0.0.1 and 127.0.0.2
		tolerant(c)
	})
	t.Cleanup(gate.open) // before the nodes close, which waits for the held adoption

	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	bdial := make(chan error, 1)
	go func() {
		_, err := b.Dial(ctx, a.LocalAddr().String())
		bdial <- err
	}()
	if err := <-bdial; err != nil {
		t.Fatalf("b's dial: %v", err)
	}
	select {
	case <-gate.held:
	case <-ctx.Done():
		t.Fatal("a never adopted b's link")
	}
	b.rec.waitEvent(t, "up", patience) // b's end of the first link

	type dialed struct {
		l   Link
		err error
	}
	adial := make(chan dialed, 1)
	other := fmt.Sprintf("127.0.0.2:%d", b.LocalAddr().(*net.UDPAddr).Port)
	go func() {
		l, err := a.Dial(ctx, other)
		adial <- dialed{l, err}
	}()
	// b adopts the second link once a sent its ready, just before a
	// adopts it: give a's adoption time to deliver its LinkUp if it does
	// not wait for the held one.
	b.rec.waitEvent(t, "up", patience)
	var second dialed
	got := false
	select {
	case second = <-adial:
		got = true
	case <-time.After(time.Second):
	}
	gate.open()
	if !got {
		second = <-adial
	}
	if second.err != nil {
		t.Fatalf("a's dial of b at %s: %v", other, second.err)
	}
	if !second.l.Outbound() {
		t.Fatalf("a's dial of b at %s returned the link b dialled", other)
	}

	// The first link is the one a did not dial.
	var first Link
	waitFor(t, "a's LinkDown of the replaced link", patience, func() bool {
		for _, e := range ev.list() {
			if !e.l.Outbound() {
				first = e.l
			}
		}
		return first != nil && ev.has(false, first)
	})
	evs := ev.list()
	for i, e := range evs {
		t.Logf("a's event %d: up=%v outbound=%v", i, e.up, e.l.Outbound())
	}
	upFirst, upSecond, downFirst := ev.index(true, first), ev.index(true, second.l), ev.index(false, first)
	if upFirst < 0 || upSecond < 0 {
		t.Fatalf("a's handler heard LinkUp of the replaced link at %d and of its replacement at %d", upFirst, upSecond)
	}
	if upFirst > upSecond {
		t.Errorf("a's handler heard LinkUp of the replaced link (event %d) after its replacement's (event %d)", upFirst, upSecond)
	}
	if downFirst < upFirst {
		t.Errorf("a's handler heard LinkDown of the replaced link (event %d) before its LinkUp (event %d)", downFirst, upFirst)
	}
	// What a handler that keeps the last link it was told is up holds.
	var held Link
	for _, e := range evs {
		switch {
		case e.up:
			held = e.l
		case held == e.l:
			held = nil
		}
	}
	if held != second.l {
		t.Errorf("a handler keeping the link it was last told is up holds %v, want the live link %v", held, second.l)
	}
	if ls := a.Links(); len(ls) != 1 || ls[0] != second.l {
		t.Errorf("a's links: %v, want only %v", ls, second.l)
	}
}
