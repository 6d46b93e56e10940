package circuit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/net/nettest"

	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

// sealKeys are the caller's ("s") and the destination's ("d") end-to-end
// keys, certified by one mesh CA.
type sealKeys struct {
	s, d    *seal.Keys
	strikes *seal.Strikes
}

func newSealKeys(t testing.TB) *sealKeys {
	t.Helper()
	ca, err := identity.NewCA("m", 0)
	if err != nil {
		t.Fatal(err)
	}
	k := &sealKeys{strikes: seal.NewStrikes(0, 0, time.Now().Add(-time.Second))}
	for name, p := range map[string]**seal.Keys{"s": &k.s, "d": &k.d} {
		id, err := ca.Issue(name, 0)
		if err != nil {
			t.Fatal(err)
		}
		if *p, err = seal.NewKeys(id); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// accept is the destination's side of a sealed open.
func (k *sealKeys) accept(s links.Stream, o *Open) (*Conn, error) {
	if o.Flags&FlagSealed == 0 {
		return nil, errors.New("open is not sealed")
	}
	msg, err := ReadHandshake(s)
	if err != nil {
		return nil, err
	}
	r, err := k.d.Respond(seal.Prologue(o.Dest, o.Source, o.Service, uint16(o.Flags)), msg, o.Source, k.strikes, time.Now())
	if err != nil {
		s.Reset(CloseProtocol)
		return nil, err
	}
	return AcceptSecure(s, o, Addr{Node: "d", Service: o.Service}, r)
}

// dial returns a dialler of sealed circuits: IK unless full, early or not.
// With resumed, it resumes the session an IK open gave (and fails if it
// cannot); otherwise it never does.
func (k *sealKeys) dial(o *Open, full, early, resumed bool) func(context.Context, links.Stream) (*Conn, error) {
	sec := Security{Keys: k.s}
	if !full {
		rec := k.d.Record()
		sec.Peer = &rec
	}
	return func(ctx context.Context, s links.Stream) (*Conn, error) {
		if !resumed {
			k.s.ForgetSession("d")
		} else if !k.s.Resumable("d") {
			return nil, errors.New("no session to resume")
		}
		local := Addr{Node: "s", Service: o.Service}
		if !early {
			return DialSecure(ctx, s, o, local, sec)
		}
		c, err := DialEarlySecure(s, o, local, sec)
		if err == nil {
			_, err = c.Write(nil) // send the first flight
		}
		return c, err
	}
}

func sealedPipe(t *testing.T, p *testPath, full, early bool) nettest.MakePipe {
	return makeSealedPipe(newSealKeys(t), p, full, early, false)
}

// resumedPipe makes circuits that resume the session of a first IK open.
func resumedPipe(t *testing.T, p *testPath, early bool) nettest.MakePipe {
	t.Helper()
	k := newSealKeys(t)
	c, err := p.connectWith(basicOpen(), k.accept, k.dial(basicOpen(), false, false, false))
	if err != nil {
		t.Fatal(err)
	}
	c.stop()
	return makeSealedPipe(k, p, false, early, true)
}

func makeSealedPipe(k *sealKeys, p *testPath, full, early, resumed bool) nettest.MakePipe {
	return func() (c1, c2 net.Conn, stop func(), err error) {
		c, err := p.connectWith(basicOpen(), k.accept, k.dial(basicOpen(), full, early, resumed))
		if err != nil {
			return nil, nil, nil, err
		}
		if c.dest.SessionResumed() != resumed || c.caller.SessionResumed() != resumed {
			c.stop()
			return nil, nil, nil, fmt.Errorf("circuit resumed: source %v, destination %v; want %v", c.caller.SessionResumed(), c.dest.SessionResumed(), resumed)
		}
		return c.caller, c.dest, c.stop, nil
	}
}

// The net.Conn conformance suite over sealed circuits: direct and relayed,
// one-message (IK) and full (XX) handshakes, Dial and DialEarly.
func TestNettestSealedDirect(t *testing.T) {
	nettest.TestConn(t, sealedPipe(t, newPath(t, 0, nil), false, false))
}

func TestNettestSealedRelayed(t *testing.T) {
	nettest.TestConn(t, sealedPipe(t, newPath(t, 1, nil), false, false))
}

func TestNettestSealedEarlyRelayed(t *testing.T) {
	nettest.TestConn(t, sealedPipe(t, newPath(t, 1, nil), false, true))
}

// Circuits that resume a session (no static-key DH) pass it too.
func TestNettestSealedResumedDirect(t *testing.T) {
	nettest.TestConn(t, resumedPipe(t, newPath(t, 0, nil), false))
}

func TestNettestSealedResumedRelayed(t *testing.T) {
	nettest.TestConn(t, resumedPipe(t, newPath(t, 1, nil), false))
}

func TestNettestSealedResumedEarlyRelayed(t *testing.T) {
	nettest.TestConn(t, resumedPipe(t, newPath(t, 1, nil), true))
}

func TestNettestSealedFullRelayed(t *testing.T) {
	nettest.TestConn(t, sealedPipe(t, newPath(t, 1, nil), true, false))
}

// recorder is a relay's stream toward the destination that keeps a copy
// of every byte it forwards.
type recorder struct {
	links.Stream
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.buf.Write(p)
	r.mu.Unlock()
	return r.Stream.Write(p)
}

// A relay that records everything it splices finds none of the payload,
// nor the early data of the first flight.
func TestSealedRelaySeesOnlyCiphertext(t *testing.T) {
	p := newPath(t, 1, nil)
	var rec *recorder
	p.wrap = func(in, out links.Stream) (links.Stream, links.Stream) {
		rec = &recorder{Stream: out}
		return in, rec
	}
	k := newSealKeys(t)
	c, err := p.connectWith(basicOpen(), k.accept, k.dial(basicOpen(), false, true, false))
	if err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte("attack at dawn "), 4000)
	go func() {
		c.caller.Write(secret)
		c.caller.CloseWrite()
	}()
	got, err := io.ReadAll(c.dest)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("destination read %d bytes, err %v; want the %d sent", len(got), err, len(secret))
	}
	c.stop()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.buf.Len() < len(secret) {
		t.Fatalf("relay forwarded %d bytes, fewer than the payload", rec.buf.Len())
	}
	if bytes.Contains(rec.buf.Bytes(), []byte("attack at")) {
		t.Fatal("relay saw payload bytes in the clear")
	}
}

// mangler is a malicious relay's stream toward the destination: it cuts
// what it forwards into handshake messages and records (u16-length frames)
// and lets edit rewrite the list of frames before forwarding them.
type mangler struct {
	links.Stream
	mu     sync.Mutex
	pend   []byte
	frames int
	edit   func(i int, f []byte) [][]byte // frame i (0 = first handshake message)
}

func (m *mangler) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pend = append(m.pend, p...)
	for len(m.pend) >= 2 {
		n := 2 + int(binary.BigEndian.Uint16(m.pend))
		if len(m.pend) < n {
			break
		}
		f := append([]byte(nil), m.pend[:n]...)
		m.pend = m.pend[n:]
		for _, out := range m.edit(m.frames, f) {
			if _, err := m.Stream.Write(out); err != nil {
				return 0, err
			}
		}
		m.frames++
	}
	return len(p), nil
}

// Tampering, truncation, replay and reordering at a relay: the destination
// reads a prefix of what was sent, then an error matching ErrIntegrity;
// never a corrupted byte.
func TestSealedRelayAttacks(t *testing.T) {
	flip := func(f []byte) []byte { g := append([]byte(nil), f...); g[len(g)-1] ^= 1; return g }
	var held []byte
	cases := map[string]func(i int, f []byte) [][]byte{
		"tamper": func(i int, f []byte) [][]byte {
			if i == 3 {
				return [][]byte{flip(f)}
			}
			return [][]byte{f}
		},
		"replay": func(i int, f []byte) [][]byte {
			if i == 3 {
				return [][]byte{f, f}
			}
			return [][]byte{f}
		},
		"reorder": func(i int, f []byte) [][]byte {
			switch i {
			case 3:
				held = f
				return nil
			case 4:
				return [][]byte{f, held}
			}
			return [][]byte{f}
		},
		"drop": func(i int, f []byte) [][]byte {
			if i == 3 {
				return nil
			}
			return [][]byte{f}
		},
		"truncate": func(i int, f []byte) [][]byte {
			if i >= 5 { // drops the last records and the end-of-stream record
				return nil
			}
			return [][]byte{f}
		},
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			p := newPath(t, 1, nil)
			p.wrap = func(in, out links.Stream) (links.Stream, links.Stream) {
				return in, &mangler{Stream: out, edit: edit}
			}
			k := newSealKeys(t)
			c, err := p.connectWith(basicOpen(), k.accept, k.dial(basicOpen(), false, false, false))
			if err != nil {
				t.Fatal(err)
			}
			defer c.stop()
			sent := make([]byte, 8*seal.MaxData)
			for i := range sent {
				sent[i] = byte(i * 7)
			}
			go func() {
				c.caller.Write(sent)
				c.caller.CloseWrite()
			}()
			got, err := io.ReadAll(c.dest)
			if !errors.Is(err, ErrIntegrity) {
				t.Fatalf("destination read %d bytes and err %v, want ErrIntegrity", len(got), err)
			}
			if !bytes.HasPrefix(sent, got) {
				t.Fatalf("destination delivered %d bytes that are not a prefix of what was sent", len(got))
			}
			if len(got) == len(sent) {
				t.Fatal("destination got everything despite the attack")
			}
			// A Write the destination's reset ends says why, as the Read
			// did (as a write's error): whichever of them a layer above
			// (the resumable one) sees first decides the error the
			// application gets.
			var oe *net.OpError
			if _, err := c.dest.Write([]byte("x")); !errors.Is(err, ErrIntegrity) || !errors.As(err, &oe) || oe.Op != "write" {
				t.Fatalf("destination Write after the integrity failure: %v, want a write's error matching ErrIntegrity", err)
			}
			// So do the record writes of the resumable layer (its acks).
			rec := make([]byte, seal.RecordHead+1, seal.RecordHead+1+seal.Overhead)
			if ok, err := c.dest.writeDataRecord(rec); !ok || !errors.Is(err, ErrIntegrity) || !errors.As(err, &oe) || oe.Op != "write" {
				t.Fatalf("destination record write after the integrity failure: %v (sealed %v), want a write's error matching ErrIntegrity", err, ok)
			}
		})
	}
}

// A relay that rewrites the open header's source makes the handshake fail
// at the destination: the claimed source is bound into it.
func TestSealedForgedSource(t *testing.T) {
	for _, full := range []bool{false, true} {
		p := newPath(t, 1, nil)
		p.forge = func(o *Open) { o.Source = "x" }
		k := newSealKeys(t)
		var acceptErr error
		dest := func(s links.Stream, o *Open) (*Conn, error) {
			c, err := k.accept(s, o)
			acceptErr = err
			return c, err
		}
		_, err := p.connectWith(basicOpen(), dest, k.dial(basicOpen(), full, false, false))
		if err == nil {
			t.Fatalf("full=%v: circuit with a forged source connected", full)
		}
		// In IK the destination finds the mismatch; in XX the source does
		// (on the destination's reply) and aborts: either way the
		// destination never hands out a circuit from "x".
		if acceptErr == nil {
			t.Fatalf("full=%v: destination accepted a circuit from a forged source", full)
		}
		if !full && !errors.Is(acceptErr, seal.ErrRetry) {
			t.Fatalf("destination: err %v, want a failed handshake", acceptErr)
		}
	}
}

// The record framing reader takes any byte stream, a byte at a time:
// it returns whole frames within the record bound, or a typed end, at an
// end that reads records of up to seal.MaxData bytes and at one that
// reads records of up to seal.MaxLargeData.
func FuzzRecordFraming(f *testing.F) {
	f.Add([]byte{0, 3, 1, 2, 3, 0, 0})
	f.Add([]byte{0xff, 0xff, 1})
	f.Add([]byte{0})
	// At each record bound and one byte beyond it.
	for _, n := range []int{seal.MaxRecord, seal.MaxLargeRecord} {
		f.Add(binary.BigEndian.AppendUint16(nil, uint16(n)))
		f.Add(binary.BigEndian.AppendUint16(nil, uint16(n+1)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, limit := range []int{seal.MaxRecord, seal.MaxLargeRecord} {
			m := msgReader{pool: true, max: limit}
			r := iotest.OneByteReader(bytes.NewReader(b))
			total := 0
			for {
				body, err := m.fill(r)
				if err != nil {
					if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, ErrIntegrity) {
						t.Fatalf("unexpected error %v", err)
					}
					break
				}
				if len(body) > limit {
					t.Fatalf("frame of %d bytes, bound %d", len(body), limit)
				}
				total += 2 + len(body)
				if total > len(b) {
					t.Fatal("read more than the input")
				}
				m.release()
			}
			m.nh, m.n = 0, 0
			m.release()
		}
	})
}

// gatedStream holds Writes, once armed, until released.
type gatedStream struct {
	links.Stream
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *gatedStream) Write(p []byte) (int, error) {
	if g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		<-g.release
	}
	return g.Stream.Write(p)
}

// The Close that starts first succeeds even when a second Close (a
// deferred cleanup, say) runs while the first is still sending the end
// record; only the second reports net.ErrClosed.
func TestSealedCloseRacingCloseFirstWins(t *testing.T) {
	p := newPath(t, 1, nil)
	k := newSealKeys(t)
	g := &gatedStream{entered: make(chan struct{}), release: make(chan struct{})}
	dial := k.dial(basicOpen(), false, false, false)
	c, err := p.connectWith(basicOpen(), k.accept, func(ctx context.Context, s links.Stream) (*Conn, error) {
		g.Stream = s
		return dial(ctx, g)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.stop()
	g.armed.Store(true)
	first := make(chan error, 1)
	go func() { first <- c.caller.Close() }()
	<-g.entered // the first Close is sending the end record
	if err := c.caller.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v, want net.ErrClosed", err)
	}
	close(g.release)
	if err := <-first; err != nil {
		t.Errorf("first Close = %v, want nil", err)
	}
	if _, err := io.ReadAll(c.dest); err != nil {
		t.Errorf("destination read %v, want a clean EOF", err)
	}
}

// A Write on a sealed circuit that the other end stopped reading with
// STOP_SENDING(0) and then went silent (a stalling relay) fails at once,
// even while a Read without deadline is blocked: it does not wait for
// that Read to look for a refusal record.
func TestSealedWriteStoppedDuringBlockedRead(t *testing.T) {
	p := newPath(t, 0, nil)
	k := newSealKeys(t)
	c, err := p.connectWith(basicOpen(), k.accept, k.dial(basicOpen(), false, false, false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.stop()
	read := make(chan error, 1)
	go func() {
		_, err := c.caller.Read(make([]byte, 16))
		read <- err
	}()
	c.dest.s.CloseRead(CloseNormal) // STOP_SENDING(0), then nothing
	wrote := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := c.caller.Write(buf); err != nil {
				wrote <- err
				return
			}
		}
	}()
	select {
	case err := <-wrote:
		if !errors.Is(err, links.ErrStreamReset) {
			t.Errorf("Write = %v, want a stream reset", err)
		}
	case <-time.After(10 * time.Second):
		c.caller.Close() // ends both the Read and the Write
		<-wrote
		t.Fatal("Write stopped by the other end waited for the blocked Read")
	}
	c.caller.Close()
	if err := <-read; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read = %v, want net.ErrClosed after Close", err)
	}
}
