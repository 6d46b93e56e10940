package node

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// silentStream is a relay's stream towards the source that passes
// nothing on: no bytes, no end, no reset. The circuit stays open and
// silent, as behind a relay (or a destination) that never answers.
type silentStream struct{ links.Stream }

func (s silentStream) Write(b []byte) (int, error) { return len(b), nil }
func (s silentStream) CloseWrite() error           { return nil }
func (s silentStream) Reset(uint64)                {}
func (s silentStream) Close() error                { return nil }

// holdReplies builds a–r–d where r forwards every open to d and passes
// nothing d sends back (the result header, the handshake reply, d's
// reset when the handshake times out) on to a.
func holdReplies(t *testing.T) *cluster {
	t.Helper()
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "r" {
			cfg.hooks = &hooks{relay: func(in, out links.Stream) (links.Stream, links.Stream) {
				return silentStream{in}, out
			}}
		}
	}
	c.build("a-r", "r-d")
	c.waitRoute("a", "d", 2)
	return c
}

// dialEarly opens an early, fail-fast circuit
// (DialOptions{Early: true, NoResume: true}) from a to d.
func dialEarly(t *testing.T, a *Node) Conn {
	t.Helper()
	conn, err := a.DialWith(ctxT(t, patience), "d", EchoService, DialOptions{Early: true, NoResume: true})
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// dialHeld opens an early, fail-fast circuit from a to d on holdReplies'
// cluster, closed when the test ends.
func dialHeld(t *testing.T) Conn {
	t.Helper()
	conn := dialEarly(t, holdReplies(t).nodes["a"])
	t.Cleanup(func() { conn.Close() })
	return conn
}

// inBackground calls op (a conn's Read or Write) with a buffer of n bytes
// on a goroutine of its own, and returns where its error comes.
func inBackground(op func([]byte) (int, error), n int) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := op(make([]byte, n))
		done <- err
	}()
	return done
}

// TestEarlyWriteKeepsItsDeadlineBesideARead: a opens an early,
// fail-fast circuit (DialOptions{Early: true, NoResume: true}) to d
// through r, which never passes d's answer back. a's writer sets a write
// deadline of 300 ms and writes more than the first flight carries, so
// its Write waits for the handshake's reply. A reader of the same circuit
// then sets a read deadline of 8 s, as a reading loop does before each
// Read. The Write fails at its own deadline, as a write: it used to wait
// for the reader's, because the handshake's read ran on the stream's read
// deadline, which Write borrowed for its wait and SetReadDeadline then
// overwrote.
func TestEarlyWriteKeepsItsDeadlineBesideARead(t *testing.T) {
	conn := dialHeld(t)
	const writeWait, readWait = 300 * time.Millisecond, 8 * time.Second
	start := time.Now()
	conn.SetWriteDeadline(start.Add(writeWait))
	wrote := inBackground(conn.Write, 64<<10)
	time.Sleep(100 * time.Millisecond) // the Write waits for the reply
	conn.SetReadDeadline(time.Now().Add(readWait))
	go conn.Read(make([]byte, 1))
	select {
	case err := <-wrote:
		took := time.Since(start)
		t.Logf("Write with a deadline of %v returned after %v: %v", writeWait, took.Round(time.Millisecond), err)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Write: %v, want os.ErrDeadlineExceeded", err)
		}
		if oe := (*net.OpError)(nil); !errors.As(err, &oe) || oe.Op != "write" {
			t.Errorf("Write: %v, want a *net.OpError of op write", err)
		}
		if took > 3*time.Second {
			t.Errorf("Write with a deadline of %v returned after %v, at the read deadline (%v)", writeWait, took.Round(time.Millisecond), readWait)
		}
	case <-time.After(readWait + 5*time.Second):
		t.Fatalf("Write with a deadline of %v still blocked after %v", writeWait, time.Since(start).Round(time.Millisecond))
	}
}

// TestEarlyReadKeepsItsDeadlineBesideAWrite: the same circuit, the other
// order. a's reader sets a read deadline of 300 ms and reads; a writer
// with no write deadline writes more than the first flight carries
// within the first few milliseconds. The Read fails at its deadline: it
// used to stay blocked, because the Write set the stream's read deadline
// to its own (none) for its wait on the handshake's reply.
func TestEarlyReadKeepsItsDeadlineBesideAWrite(t *testing.T) {
	conn := dialHeld(t)
	const readWait, give = 300 * time.Millisecond, 8 * time.Second
	start := time.Now()
	conn.SetReadDeadline(start.Add(readWait))
	read := inBackground(conn.Read, 1)
	go conn.Write(make([]byte, 64<<10)) // no write deadline
	select {
	case err := <-read:
		took := time.Since(start)
		t.Logf("Read with a deadline of %v returned after %v: %v", readWait, took.Round(time.Millisecond), err)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Read: %v, want os.ErrDeadlineExceeded", err)
		}
		if took > 3*time.Second {
			t.Errorf("Read with a deadline of %v returned after %v", readWait, took.Round(time.Millisecond))
		}
	case <-time.After(give):
		t.Fatalf("Read with a deadline of %v still blocked after %v", readWait, time.Since(start).Round(time.Millisecond))
	}
}

// TestEarlyWriteWithoutDeadlineOutlivesReadDeadline: a's writer sets no
// write deadline and writes more than the first flight carries; a reader
// then sets a read deadline of 300 ms. The Write does not fail with a
// deadline error, having none: it used to fail with the reader's.
func TestEarlyWriteWithoutDeadlineOutlivesReadDeadline(t *testing.T) {
	t.Parallel()
	conn := dialHeld(t)
	wrote := inBackground(conn.Write, 64<<10)
	time.Sleep(100 * time.Millisecond) // the Write waits for the reply
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	go conn.Read(make([]byte, 1))
	select {
	case err := <-wrote:
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write with no write deadline failed with a deadline error: %v", err)
		}
		t.Logf("Write: %v", err)
	case <-time.After(3 * time.Second):
		t.Log("Write still waiting for the reply after 3 s, as it should without a deadline")
	}
}

// TestEarlyReadDeadlineAlone is the control of the tests above: on the
// same silent path, a Read with a deadline of 300 ms and no Write beside
// it fails at its deadline.
func TestEarlyReadDeadlineAlone(t *testing.T) {
	conn := dialHeld(t)
	start := time.Now()
	conn.SetReadDeadline(start.Add(300 * time.Millisecond))
	_, err := conn.Read(make([]byte, 1))
	t.Logf("Read alone returned after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Fatalf("Read alone: %v after %v", err, time.Since(start))
	}
}
