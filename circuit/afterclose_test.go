package circuit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// circuitEnd is what every kind of circuit end offers its user: a
// net.Conn with half-close and reset.
type circuitEnd interface {
	net.Conn
	CloseWrite() error
	Reset(code uint64)
}

// circuitKind makes a circuit of one kind and returns its two ends.
type circuitKind struct {
	name string
	pair func(t *testing.T) (caller, dest circuitEnd)
}

// everyCircuitKind is every kind of circuit: plain (Dial, DialEarly),
// sealed (DialSecure, DialEarlySecure, with and without Security.Reopen)
// and resumable (with and without Early), over a path with one relay.
func everyCircuitKind(t *testing.T) []circuitKind {
	p := newPath(t, 1, nil)
	k := newSealKeys(t)
	o := basicOpen()
	plain := func(early bool) func(t *testing.T) (circuitEnd, circuitEnd) {
		return func(t *testing.T) (circuitEnd, circuitEnd) {
			c := mustConnect(t, p, o, early)
			return c.caller, c.dest
		}
	}
	sealed := func(dial func(context.Context, links.Stream) (*Conn, error)) func(t *testing.T) (circuitEnd, circuitEnd) {
		return func(t *testing.T) (circuitEnd, circuitEnd) {
			c, err := p.connectWith(o, k.accept, dial)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.stop)
			return c.caller, c.dest
		}
	}
	// An early sealed dial that may open again after Retry: its Conn runs
	// over a reopenable stream.
	reopening := func(_ context.Context, s links.Stream) (*Conn, error) {
		rec := k.d.Record()
		c, err := DialEarlySecure(s, o, Addr{Node: "s", Service: o.Service}, Security{Keys: k.s, Peer: &rec,
			Reopen: func(context.Context) (links.Stream, error) { return p.links[0].open() }})
		if err != nil {
			return nil, err
		}
		if c.sec.stream == nil {
			return nil, errors.New("the conn does not run over a reopenable stream")
		}
		_, err = c.Write(nil) // send the first flight
		return c, err
	}
	resumable := func(scfg ResumeConfig) func(t *testing.T) (circuitEnd, circuitEnd) {
		return func(t *testing.T) (circuitEnd, circuitEnd) {
			_, src, dst := newResumeRig(t).pair(scfg, ResumeConfig{})
			return src, dst
		}
	}
	return []circuitKind{
		{"plain", plain(false)},
		{"plain early", plain(true)},
		{"sealed", sealed(k.dial(o, false, false, false))},
		{"sealed early", sealed(k.dial(o, false, true, false))},
		{"sealed early reopenable", sealed(reopening)},
		{"resumable", resumable(ResumeConfig{})},
		{"resumable early", resumable(ResumeConfig{Early: true})},
	}
}

// eachEnd runs f in a subtest for each kind of circuit and each of its
// ends (end), the other end being peer.
func eachEnd(t *testing.T, f func(t *testing.T, end, peer circuitEnd)) {
	for _, kind := range everyCircuitKind(t) {
		for _, caller := range []bool{true, false} {
			name := kind.name + "/caller"
			if !caller {
				name = kind.name + "/destination"
			}
			t.Run(name, func(t *testing.T) {
				end, peer := kind.pair(t)
				if !caller {
					end, peer = peer, end
				}
				f(t, end, peer)
			})
		}
	}
}

// abortEnd aborts end with code as its node does on shutdown.
func abortEnd(t *testing.T, end circuitEnd, code uint64) {
	switch c := end.(type) {
	case *Conn:
		c.Abort(code)
	case *Resumable:
		c.Abort(code, LocalReset(code))
	default:
		t.Fatalf("no Abort on a %T", end)
	}
}

// TestAfterCloseSameOnEveryCircuit: once an end is closed (Close; Reset;
// or Close after the other end reset the circuit), Read, Write (of bytes
// or none), SetDeadline, SetReadDeadline, SetWriteDeadline (to a time or
// none), CloseWrite and a further Close fail alike on every kind of
// circuit, at either end, with a *net.OpError matching net.ErrClosed, as
// on a net.TCPConn. After Abort (a node's shutdown) they fail alike too,
// Read and Write with the abort's reset (matching ErrShuttingDown), the
// others with net.ErrClosed, and a Resumable's AppClosed stays false.
// Before, a resumable circuit's deadline setters returned nil after Close
// and after Reset while a Conn's failed with net.ErrClosed; after Abort,
// a Resumable's Close returned nil and its deadline setters succeeded
// while a Conn's failed, and its Read returned the bytes it had queued.
func TestAfterCloseSameOnEveryCircuit(t *testing.T) {
	endings := []struct {
		name  string
		end   func(t *testing.T, end, peer circuitEnd)
		abort bool // Read and Write report the abort's reset
	}{
		{"Close", func(t *testing.T, end, _ circuitEnd) {
			if err := end.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}, false},
		{"Reset", func(_ *testing.T, end, _ circuitEnd) { end.Reset(CloseCancelled) }, false},
		{"peer Reset then Close", func(t *testing.T, end, peer circuitEnd) {
			peer.Reset(CloseCancelled)
			// A loaded machine is slow, not stuck: the reset arrives.
			_ = end.SetReadDeadline(time.Now().Add(time.Minute))
			if _, err := end.Read(make([]byte, 8)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read after the other end's Reset: %v, want the reset", err)
			}
			if err := end.Close(); err != nil {
				t.Fatalf("Close after the other end's Reset: %v", err)
			}
		}, false},
		{"Abort", func(t *testing.T, end, peer circuitEnd) {
			// Bytes left unread are not read after Abort, as on a Conn.
			if _, err := peer.Write([]byte("queued")); err != nil {
				t.Fatalf("the other end's Write: %v", err)
			}
			_ = end.SetReadDeadline(time.Now().Add(time.Minute)) // a loaded machine is slow, not stuck
			if n, err := end.Read(make([]byte, 1)); n != 1 {
				t.Fatalf("Read of the other end's bytes: %d, %v", n, err)
			}
			abortEnd(t, end, CloseShuttingDown)
			if r, ok := end.(*Resumable); ok && r.AppClosed() {
				t.Error("AppClosed after Abort, want false: the application did not close it")
			}
		}, true},
	}
	calls := []struct {
		name string
		call func(c circuitEnd) error
		io   bool // a Read or a Write
	}{
		{"Read", func(c circuitEnd) error { _, err := c.Read(make([]byte, 8)); return err }, true},
		{"Read of nothing", func(c circuitEnd) error { _, err := c.Read(nil); return err }, true},
		{"Write", func(c circuitEnd) error { _, err := c.Write([]byte("x")); return err }, true},
		{"Write of nothing", func(c circuitEnd) error { _, err := c.Write(nil); return err }, true},
		{"SetDeadline", func(c circuitEnd) error { return c.SetDeadline(time.Now().Add(time.Hour)) }, false},
		{"SetDeadline of none", func(c circuitEnd) error { return c.SetDeadline(time.Time{}) }, false},
		{"SetReadDeadline", func(c circuitEnd) error { return c.SetReadDeadline(time.Now().Add(time.Hour)) }, false},
		{"SetWriteDeadline", func(c circuitEnd) error { return c.SetWriteDeadline(time.Now().Add(time.Hour)) }, false},
		{"CloseWrite", func(c circuitEnd) error { return c.CloseWrite() }, false},
		{"Close", func(c circuitEnd) error { return c.Close() }, false},
	}
	for _, ending := range endings {
		t.Run(ending.name, func(t *testing.T) {
			eachEnd(t, func(t *testing.T, end, peer circuitEnd) {
				ending.end(t, end, peer)
				for _, c := range calls {
					err := c.call(end)
					want := net.ErrClosed
					if ending.abort && c.io {
						want = ErrShuttingDown
					}
					var oe *net.OpError
					if !errors.Is(err, want) || !errors.As(err, &oe) {
						t.Errorf("%s after %s: %v (%T), want a *net.OpError matching %v", c.name, ending.name, err, err, want)
					}
				}
			})
		})
	}
}

// TestResetByTheOtherEndSameOnEveryCircuit: once the other end reset the
// circuit (CloseShuttingDown, its node closing), this end's Read, Write
// and CloseWrite, before any Close here, fail alike on every kind of
// circuit with a *net.OpError of that reset: a *ResetError from the
// other side matching ErrShuttingDown. Before, a Resumable's CloseWrite
// failed with a bare net.ErrClosed, which lost the cause its Read and
// Write reported and a Conn's CloseWrite reports.
func TestResetByTheOtherEndSameOnEveryCircuit(t *testing.T) {
	eachEnd(t, func(t *testing.T, end, peer circuitEnd) {
		peer.Reset(CloseShuttingDown)
		// A loaded machine is slow, not stuck: the reset arrives.
		_ = end.SetReadDeadline(time.Now().Add(time.Minute))
		_, rerr := end.Read(make([]byte, 8))
		_, werr := end.Write([]byte("x"))
		cerr := end.CloseWrite()
		for op, err := range map[string]error{"Read": rerr, "Write": werr, "CloseWrite": cerr} {
			var oe *net.OpError
			var re *ResetError
			if !errors.As(err, &oe) || !errors.As(err, &re) || !re.Remote || !errors.Is(err, ErrShuttingDown) {
				t.Errorf("%s after the other end's Reset: %v (%T), want a *net.OpError of its reset matching ErrShuttingDown", op, err, err)
			}
		}
	})
}

// TestFailedHandshakeErrorsNameTheirOperation: when the destination
// resets an early sealed circuit during its handshake (with and without
// Security.Reopen), the source's Read fails with a *net.OpError whose Op
// is "read", a Write (of bytes or none) with one whose Op is "write" and
// CloseWrite with one whose Op is "close", each of the reset. Before, a
// Write after the Read that saw the failure returned the handshake's
// error as recorded, with Op "read", and CloseWrite one with Op "write".
func TestFailedHandshakeErrorsNameTheirOperation(t *testing.T) {
	for _, reopen := range []bool{false, true} {
		t.Run(fmt.Sprintf("reopen=%v", reopen), func(t *testing.T) {
			p := newPath(t, 1, nil)
			k := newSealKeys(t)
			o := basicOpen()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s, err := p.links[0].open()
			if err != nil {
				t.Fatal(err)
			}
			wait := p.start(ctx, func(s links.Stream, _ *Open) (*Conn, error) {
				s.Reset(CloseCancelled)
				return nil, nil
			})
			rec := k.d.Record()
			sec := Security{Keys: k.s, Peer: &rec}
			if reopen {
				sec.Reopen = func(context.Context) (links.Stream, error) { return p.links[0].open() }
			}
			c, err := DialEarlySecure(s, o, Addr{Node: "s", Service: o.Service}, sec)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("early")); err != nil { // the first flight
				t.Fatalf("first Write: %v", err)
			}
			if _, _, err := wait(); err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(time.Minute)) // a loaded machine is slow, not stuck
			calls := []struct {
				name, op string
				call     func() error
			}{
				{"Read", "read", func() error { _, err := c.Read(make([]byte, 8)); return err }},
				{"Write", "write", func() error { _, err := c.Write([]byte("x")); return err }},
				{"Write of nothing", "write", func() error { _, err := c.Write(nil); return err }},
				{"Read again", "read", func() error { _, err := c.Read(make([]byte, 8)); return err }},
				{"CloseWrite", "close", func() error { return c.CloseWrite() }},
			}
			for _, call := range calls {
				err := call.call()
				var oe *net.OpError
				if !errors.As(err, &oe) || oe.Op != call.op || !errors.Is(err, links.ErrStreamReset) {
					t.Errorf("%s after the destination's reset: %v (%T), want a *net.OpError of the reset with Op %q", call.name, err, err, call.op)
				}
			}
		})
	}
}

// TestAbortAfterCleanEndKeepsWhatArrived: a resumable circuit that ended
// cleanly (both ends half-closed, every byte acknowledged) and is then
// aborted, as a node's Close aborts the circuits it still lists, keeps
// the bytes the other end sent: Read returns them, then io.EOF. Before,
// the Abort marked the end aborted though it changed nothing else, and
// Read failed with net.ErrClosed, losing "tail".
func TestAbortAfterCleanEndKeepsWhatArrived(t *testing.T) {
	_, src, dst := newResumeRig(t).pair(ResumeConfig{}, ResumeConfig{})
	if _, err := dst.Write([]byte("tail")); err != nil {
		t.Fatal(err)
	}
	if err := dst.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := src.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-src.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the circuit did not end after both ends half-closed")
	}
	if err := src.Err(); err != nil {
		t.Fatalf("the circuit ended with %v, want a clean end", err)
	}
	src.Abort(CloseShuttingDown, LocalReset(CloseShuttingDown))
	got, err := io.ReadAll(src)
	if string(got) != "tail" || err != nil {
		t.Fatalf("read after Abort of a cleanly ended circuit: %q, %v; want \"tail\" and no error", got, err)
	}
}
