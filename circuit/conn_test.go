package circuit

import (
	"context"
	"errors"
	"fmt"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"io"
	"net"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

func mustConnect(t *testing.T, p *testPath, o *Open, early bool) *circuit {
	t.Helper()
	c, err := p.connect(o, early)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	return c
}

// openFirstHop builds a path with relays and opens the caller's stream on
// its first link; ctx bounds the test.
func openFirstHop(t *testing.T, relays int) (*testPath, context.Context, links.Stream) {
	t.Helper()
	p := newPath(t, relays, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	s, err := p.links[0].open()
	if err != nil {
		t.Fatal(err)
	}
	return p, ctx, s
}

func TestDialAcceptAddrsPathAndCounters(t *testing.T) {
	p := newPath(t, 2, nil)
	o := basicOpen()
	o.Flags = FlagRecordPath
	c := mustConnect(t, p, o, false)

	want := []string{"s", "r1", "r2"} // the source, then each relay
	if got := c.caller.Path(); !reflect.DeepEqual(got, want) {
		t.Errorf("caller path %v, want %v", got, want)
	}
	if got := c.dest.Path(); !reflect.DeepEqual(got, want) {
		t.Errorf("destination path %v, want %v", got, want)
	}
	for _, a := range []struct {
		got  net.Addr
		want string
	}{
		{c.caller.RemoteAddr(), "d/echo"}, {c.caller.LocalAddr(), "s/echo"},
		{c.dest.RemoteAddr(), "s/echo"}, {c.dest.LocalAddr(), "d/echo"},
	} {
		if a.got.String() != a.want || a.got.Network() != "circuitmesh" {
			t.Errorf("addr %s %s, want circuitmesh %s", a.got.Network(), a.got, a.want)
		}
	}
	if _, err := c.caller.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c.dest, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if c.caller.BytesOut() != 5 || c.dest.BytesIn() != 5 || c.dest.BytesOut() != 0 {
		t.Errorf("counters: caller out %d, dest in %d out %d", c.caller.BytesOut(), c.dest.BytesIn(), c.dest.BytesOut())
	}
}

func TestResultErrEveryCode(t *testing.T) {
	want := map[Code]error{
		NoRoute: ErrNoRoute, NoService: ErrNoService, HopLimit: ErrHopLimit,
		Policy: ErrRefusedByPolicy, Overloaded: ErrOverloaded,
		ShuttingDown: ErrShuttingDown, LinkLost: links.ErrLinkLost, Internal: ErrInternal,
		Retry: seal.ErrRetry,
	}
	if (&Result{Code: Accepted, Node: "d"}).Err("d", "x") != nil {
		t.Fatal("accepted result gave an error")
	}
	for code := Code(1); code <= maxCode; code++ {
		err := (&Result{Code: code, Node: "r1", Reason: "why"}).Err("d", "grpc")
		if !errors.Is(err, want[code]) {
			t.Errorf("code %s: %v does not match its sentinel", code, err)
		}
		for other, s := range want {
			if other != code && errors.Is(err, s) {
				t.Errorf("code %s also matches %v", code, s)
			}
		}
		wantText := "circuit to d/grpc refused by r1 (unauthenticated): " + code.String() + " (why)"
		if err.Error() != wantText {
			t.Errorf("text %q, want %q", err, wantText)
		}
	}
}

// refuseWith is a destination that refuses every circuit with code.
func refuseWith(code Code) destFunc {
	return func(s links.Stream, o *Open) (*Conn, error) {
		return nil, Refuse(s, Result{Code: code, Node: "d", Reason: "test", Path: o.Path})
	}
}

func TestDialRefusedThroughRelay(t *testing.T) {
	p := newPath(t, 1, nil)
	for _, code := range []Code{NoService, Policy, Overloaded} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := p.links[0].open()
		if err != nil {
			t.Fatal(err)
		}
		wait := p.start(ctx, refuseWith(code))
		_, err = Dial(ctx, s, basicOpen(), Addr{Node: "s"})
		var re *RefusedError
		if !errors.As(err, &re) || re.Code != code || re.Node != "d" || re.Dest != "d" || re.Service != "echo" {
			t.Errorf("code %s: Dial error %v (%+v)", code, err, re)
		}
		if !errors.Is(err, code.Err()) {
			t.Errorf("code %s: %v does not match %v", code, err, code.Err())
		}
		_, sps, _ := wait()
		(&circuit{splicers: sps}).waitRelays(5 * time.Second)
		cancel()
	}
}

func TestHopLimitRefusedByRelay(t *testing.T) {
	p, ctx, s := openFirstHop(t, 2)
	type out struct {
		sp  *Splicer
		err error
	}
	r1, r2 := make(chan out, 1), make(chan out, 1)
	go func() { sp, err := p.relay(ctx, 0); r1 <- out{sp, err} }()
	go func() { sp, err := p.relay(ctx, 1); r2 <- out{sp, err} }()
	o := basicOpen()
	o.HopLimit = 1 // r1 may forward once; r2 receives 0 and must refuse
	_, err := Dial(ctx, s, o, Addr{Node: "s"})
	var re *RefusedError
	if !errors.Is(err, ErrHopLimit) || !errors.As(err, &re) || re.Node != "r2" {
		t.Fatalf("Dial: %v, want hop limit refused by r2", err)
	}
	if o := <-r2; o.err != nil || o.sp != nil {
		t.Fatalf("r2: %v", o.err)
	}
	o1 := <-r1
	if o1.err != nil {
		t.Fatal(o1.err)
	}
	(&circuit{splicers: []*Splicer{o1.sp}}).waitRelays(5 * time.Second)
}

func TestDialEarlyDataBeforeResult(t *testing.T) {
	p, ctx, s := openFirstHop(t, 1)
	got := make(chan string, 1)
	// The destination reads the early bytes before it answers: they must
	// already be there, sent with the open.
	wait := p.start(ctx, func(s links.Stream, o *Open) (*Conn, error) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(s, buf); err != nil {
			return nil, err
		}
		if o.Flags&FlagEarly == 0 || o.HopLimit != DefaultHopLimit-1 || o.Hop != 1 {
			buf = []byte(fmt.Sprintf("header flags %b hop limit %d hop %d", o.Flags, o.HopLimit, o.Hop))
		}
		got <- string(buf)
		return Accept(s, o, Addr{Node: "d", Service: o.Service})
	})
	c, err := DialEarly(s, basicOpen(), Addr{Node: "s", Service: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("early")); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "early" {
		t.Fatalf("destination read %q before answering, want %q", g, "early")
	}
	dest, sps, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	cir := &circuit{caller: c, dest: dest, splicers: sps}
	defer cir.stop()
	if _, err := dest.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ok" {
		t.Fatalf("caller read %q, %v", buf, err)
	}
}

func TestDialEarlyRefusalOnReadAndWrite(t *testing.T) {
	p, ctx, s := openFirstHop(t, 1)
	wait := p.start(ctx, refuseWith(NoService))
	c, err := DialEarly(s, basicOpen(), Addr{Node: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Writes go out until the refusal comes back; then Write reports it.
	chunk := make([]byte, 4096)
	var werr error
	for i := 0; i < 10000 && werr == nil; i++ {
		_, werr = c.Write(chunk)
	}
	if !errors.Is(werr, ErrNoService) {
		t.Fatalf("Write after refusal: %v, want ErrNoService", werr)
	}
	_, err = c.Read(chunk)
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != NoService || re.Node != "d" {
		t.Fatalf("Read: %v, want the refusal", err)
	}
	_, sps, _ := wait()
	(&circuit{splicers: sps}).waitRelays(5 * time.Second)
}

// TestDialContextAbortResetsStream: a Dial whose context ends while it
// waits for the result returns the context's error and resets the
// stream, which the next hop reads as CloseCancelled. The context is
// cancelled once the open header arrived: a deadline could pass before a
// slow process sent it, and the reset would then discard it.
func TestDialContextAbortResetsStream(t *testing.T) {
	p := newPath(t, 0, nil)
	s, err := p.links[0].open()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	arrived := make(chan links.Stream, 1)
	go func() {
		s, _, err := p.arrive(context.Background())
		if err == nil {
			arrived <- s // never answers
		}
		close(arrived)
	}()
	dialed := make(chan error, 1)
	go func() {
		_, err := Dial(ctx, s, basicOpen(), Addr{Node: "s"})
		dialed <- err
	}()
	var ds links.Stream
	select {
	case st, ok := <-arrived:
		if !ok {
			t.Fatal("the open header never arrived")
		}
		ds = st
	case err := <-dialed:
		t.Fatalf("Dial returned before its context ended: %v", err)
	case <-time.After(30 * time.Second): // room for a loaded machine
		t.Fatal("the open header did not arrive in 30 s")
	}
	cancel()
	start := time.Now()
	if err := <-dialed; !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Dial returned %v after its context was cancelled", d)
	}
	_, err = ds.Read(make([]byte, 1))
	var re *links.StreamResetError
	if !errors.As(err, &re) || re.Code != CloseCancelled {
		t.Fatalf("destination read: %v, want reset with CloseCancelled", err)
	}
}

func TestDeadlinesAndClose(t *testing.T) {
	c := mustConnect(t, newPath(t, 0, nil), basicOpen(), false)
	c.caller.SetDeadline(time.Now().Add(-time.Second))
	for name, op := range map[string]func([]byte) (int, error){"Read": c.caller.Read, "Write": c.caller.Write} {
		// Failing at all is the behaviour (nothing arrives, the window is
		// open): a call that blocks instead fails the test after a bound
		// that is room for a loaded machine, not a figure.
		done := make(chan error, 1)
		go func() {
			_, err := op(make([]byte, 8))
			done <- err
		}()
		select {
		case err := <-done:
			var ne net.Error
			if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("%s past deadline: %v, want a timeout matching os.ErrDeadlineExceeded", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s past deadline still blocked after 30 s", name)
		}
	}
	c.caller.SetDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.caller.Read(make([]byte, 8))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := c.caller.Close(); err != nil {
		t.Fatal(err)
	}
	wantUnblockedClosed(t, "Read", errc)
	if _, err := c.caller.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v, want net.ErrClosed", err)
	}
	if err := c.caller.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v, want net.ErrClosed", err)
	}
}

func TestCloseUnblocksPendingWrite(t *testing.T) {
	c := mustConnect(t, newPath(t, 0, nil), basicOpen(), false)
	errc := make(chan error, 1)
	go func() {
		// Far more than the flow-control windows: blocks, nobody reads.
		_, err := c.caller.Write(make([]byte, 32<<20))
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-errc:
		t.Fatalf("Write returned before Close: %v", err)
	default:
	}
	c.caller.Close()
	wantUnblockedClosed(t, "Write", errc)
}

// wantUnblockedClosed waits for a pending op, interrupted by Close, to fail
// with net.ErrClosed.
func wantUnblockedClosed(t *testing.T, op string, errc <-chan error) {
	t.Helper()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("pending %s after Close: %v, want net.ErrClosed", op, err)
		}
	case <-time.After(20 * time.Second): // generous: a loaded machine is slow, not stuck
		t.Fatalf("Close did not unblock a pending %s", op)
	}
}

// TestAcceptClearsHeaderDeadline: a node bounds the header read with a
// stream deadline; the Conn it gets from Accept must not inherit it.
func TestAcceptClearsHeaderDeadline(t *testing.T) {
	p, ctx, s := openFirstHop(t, 0)
	wait := p.start(ctx, func(s links.Stream, o *Open) (*Conn, error) {
		s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		return acceptAll(s, o)
	})
	caller, err := Dial(ctx, s, basicOpen(), Addr{Node: "s"})
	if err != nil {
		t.Fatal(err)
	}
	dest, _, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	c := &circuit{caller: caller, dest: dest}
	defer c.stop()
	time.Sleep(50 * time.Millisecond)
	if _, err := caller.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(dest, buf); err != nil {
		t.Fatalf("read after the header deadline: %v", err)
	}
}

func TestCloseCodeCarriesReasonAndHop(t *testing.T) {
	for _, c := range []struct {
		code   CloseCode
		reason uint64
		hop    int
		text   string
	}{
		{CloseCode(CloseLinkLost), CloseLinkLost, 0, "link lost"},
		{CloseCode(CloseLinkLost).At(2), CloseLinkLost, 2, "link lost at hop 2"},
		{CloseCode(CloseLinkLost).At(2).At(1), CloseLinkLost, 2, "link lost at hop 2"}, // forwarded unchanged
		{CloseCode(CloseTimeout).At(300), CloseTimeout, 0, "timed out at a relay"},     // out of range: unstamped
		{CloseCode(42), 42, 0, "code 42"},
	} {
		if c.code.Reason() != c.reason || c.code.Hop() != c.hop || c.code.String() != c.text {
			t.Errorf("%d: reason %d hop %d %q, want %d %d %q", uint64(c.code), c.code.Reason(), c.code.Hop(), c.code.String(), c.reason, c.hop, c.text)
		}
	}
}
