package circuit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/links"
)

// respondFull reads a full handshake's first message at a destination and
// answers it with d's keys.
func respondFull(k *sealKeys, s links.Stream, o *Open) (*seal.Responder, error) {
	msg, err := ReadHandshake(s)
	if err != nil {
		return nil, err
	}
	r, err := k.d.Respond(seal.Prologue(o.Dest, o.Source, o.Service, uint16(o.Flags)), msg, o.Source, k.strikes, time.Now())
	if err != nil {
		return nil, err
	}
	if !r.Full() {
		return nil, errors.New("the source did not take the full handshake")
	}
	return r, nil
}

// TestThirdMessageTimedFromTheReply: a destination whose own work before
// its reply outlasted the deadline it set for the first message (a
// starved scheduler, here a wait past that deadline) still reads the
// third message of a full handshake that the source sent at once, because
// the window AcceptSecureWithin gives it counts from the reply's write.
// Before, that read shared the first message's deadline, already run out
// by the reply, and the honest first contact was reset.
func TestThirdMessageTimedFromTheReply(t *testing.T) {
	p, ctx, s := openFirstHop(t, 1)
	k := newSealKeys(t)
	o := basicOpen()
	const firstWithin = 200 * time.Millisecond
	wait := p.start(ctx, func(s links.Stream, o *Open) (*Conn, error) {
		firstBy := time.Now().Add(firstWithin)
		s.SetReadDeadline(firstBy) // as a node bounds the first message
		r, err := respondFull(k, s, o)
		if err != nil {
			return nil, err
		}
		// The destination's own work before its reply ends after the
		// first message's deadline.
		for time.Now().Before(firstBy.Add(100 * time.Millisecond)) {
			time.Sleep(50 * time.Millisecond)
		}
		return AcceptSecureWithin(s, o, Addr{Node: "d", Service: o.Service}, r, 30*time.Second)
	})
	src, err := k.dial(o, true, false, false)(ctx, s)
	dest, sps, werr := wait()
	c := &circuit{caller: src, dest: dest, splicers: sps}
	defer c.stop()
	if werr != nil {
		t.Fatalf("the destination's accept: %v, want the source's third message read", werr)
	}
	if err != nil {
		t.Fatalf("the source's dial: %v", err)
	}
	if _, err := src.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(dest, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("the destination read %q, %v", buf, err)
	}
}

// sourceStream is a source's stream that records the code it is first
// reset with, and can fail its reads once the result header was read
// (readErr) or its writes after the first (writeErr).
type sourceStream struct {
	links.Stream
	resultLen int           // bytes of the result header
	gotResult chan struct{} // closed once they were read
	readErr   error
	writeErr  error

	mu     sync.Mutex
	read   int
	writes int
	reset  *uint64
}

func (s *sourceStream) Read(p []byte) (int, error) {
	s.mu.Lock()
	if s.read >= s.resultLen && s.readErr != nil {
		s.mu.Unlock()
		return 0, s.readErr
	}
	s.mu.Unlock()
	n, err := s.Stream.Read(p)
	s.mu.Lock()
	before := s.read
	s.read += n
	if before < s.resultLen && s.read >= s.resultLen {
		close(s.gotResult)
	}
	s.mu.Unlock()
	return n, err
}

func (s *sourceStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.writes++
	fail := s.writes > 1 && s.writeErr != nil
	s.mu.Unlock()
	if fail {
		return 0, s.writeErr
	}
	return s.Stream.Write(p)
}

func (s *sourceStream) Reset(code uint64) {
	s.mu.Lock()
	if s.reset == nil {
		s.reset = &code
	}
	s.mu.Unlock()
	s.Stream.Reset(code)
}

func (s *sourceStream) resetCode() (CloseCode, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reset == nil {
		return 0, false
	}
	return CloseCode(*s.reset), true
}

// acceptedResult is the result header a destination named d writes.
func acceptedResult(t *testing.T) []byte {
	b, err := (&Result{Code: Accepted, Node: "d"}).AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSourceResetsAFailedFirstContactWithItsCause: a source whose full
// handshake failed after the destination accepted, for no fault of
// either end's protocol, resets the circuit with what failed, not with
// CloseProtocol: the path's reset passed on, a lost link as
// CloseLinkLost, on the reply's read and on the third message's write,
// and a deadline on that write as CloseInternal.
func TestSourceResetsAFailedFirstContactWithItsCause(t *testing.T) {
	lost := fmt.Errorf("test: %w", links.ErrLinkLost)
	for _, tc := range []struct {
		name      string
		readErr   error  // the reply's read fails with it
		writeErr  error  // the third message's write fails with it
		destReset uint64 // the destination resets once the source read the result
		want      uint64
	}{
		{name: "path reset during the reply", destReset: CloseShuttingDown, want: CloseShuttingDown},
		{name: "link lost during the reply", readErr: lost, want: CloseLinkLost},
		{name: "link lost writing the third message", writeErr: lost, want: CloseLinkLost},
		{name: "deadline writing the third message", writeErr: os.ErrDeadlineExceeded, want: CloseInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ctx, s := openFirstHop(t, 1)
			k := newSealKeys(t)
			o := basicOpen()
			result := acceptedResult(t)
			src := &sourceStream{Stream: s, resultLen: len(result), gotResult: make(chan struct{}),
				readErr: tc.readErr, writeErr: tc.writeErr}
			destDone := make(chan struct{})
			wait := p.start(ctx, func(s links.Stream, o *Open) (*Conn, error) {
				if tc.writeErr != nil {
					r, err := respondFull(k, s, o)
					if err != nil {
						return nil, err
					}
					return AcceptSecure(s, o, Addr{Node: "d", Service: o.Service}, r)
				}
				if _, err := ReadHandshake(s); err != nil {
					return nil, err
				}
				if _, err := s.Write(result); err != nil {
					return nil, err
				}
				select {
				case <-src.gotResult:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				if tc.destReset != 0 {
					s.Reset(tc.destReset)
				} else {
					<-destDone
					s.Reset(CloseCancelled)
				}
				return nil, errors.New("no reply sent")
			})
			c, err := k.dial(o, true, false, false)(ctx, src)
			close(destDone)
			_, sps, werr := wait()
			for _, sp := range sps {
				select {
				case <-sp.Done():
				case <-time.After(10 * time.Second):
					t.Error("the relay did not end the circuit")
				}
			}
			if err == nil {
				c.Close()
				t.Fatal("the dial succeeded")
			}
			code, ok := src.resetCode()
			if !ok {
				t.Fatalf("the source did not reset its stream (dial: %v)", err)
			}
			if code.Reason() != tc.want {
				t.Fatalf("the source reset with %q (code %d), want %q (dial: %v)", code, uint64(code), CloseCode(tc.want), err)
			}
			if tc.writeErr != nil {
				// The destination reads the source's reset as it is.
				var re *links.StreamResetError
				if !errors.As(werr, &re) || CloseCode(re.Code).Reason() != tc.want {
					t.Fatalf("the destination's accept: %v, want a reset with %q", werr, CloseCode(tc.want))
				}
			}
		})
	}
}
