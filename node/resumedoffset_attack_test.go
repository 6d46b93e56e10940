package node

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// frameResumedType is the type of the resumable framing's resumed frame,
// the destination's answer to a resume (docs/PROTOCOL.md §3.9).
const frameResumedType = 6

// TestAttackResumedBelowAcknowledgedCrashesSource: h, an honest node,
// opens a resumable circuit to a service of m, a member with a valid
// certificate. m's service echoes h's request, which acknowledges it,
// then resets the circuit's path with the code of a lost link, and when h
// resumes, m answers the resume with offset 0: it claims to have received
// nothing of what it acknowledged. Before, h took the offset as it came,
// and the writer of its circuit indexed its retransmit buffer below its
// start: the process panicked (integer divide by zero, the buffer being
// empty), ending every circuit and link of h. Now h's circuit fails with
// ErrIntegrity (its resume refused) and h carries on.
func TestAttackResumedBelowAcknowledgedCrashesSource(t *testing.T) {
	c := newCluster(t, true)
	resumes := make(chan struct{}, 16)
	c.tweak = func(cfg *Config) {
		if cfg.Name != "m" {
			return
		}
		cfg.hooks = &hooks{resume: func(p circuit.Path, o *circuit.Open) {
			defer p.Close()
			resumes <- struct{}{}
			p.SetReadDeadline(time.Now().Add(patience))
			var frame [1 + 16 + 8]byte // resume: type, id, offset
			if _, err := io.ReadFull(p, frame[:]); err != nil {
				return
			}
			p.Write(binary.BigEndian.AppendUint64([]byte{frameResumedType}, 0))
			io.Copy(io.Discard, p)
		}}
	}
	c.build("h-m")
	h, m := c.nodes["h"], c.nodes["m"]
	echoed := make(chan struct{}) // h read the echo, and the acknowledgement before it
	serve(t, m, "liar", func(conn io.ReadWriteCloser) {
		var b [5]byte
		if _, err := io.ReadFull(conn, b[:]); err != nil {
			return
		}
		conn.Write(b[:])
		select {
		case <-echoed:
		case <-time.After(patience):
			return
		}
		if rc, ok := conn.(*resumableConn); ok {
			rc.Current().Reset(circuit.CloseLinkLost)
		}
		io.Copy(io.Discard, conn)
	})
	conn, err := h.Dial(ctxT(t, patience), "m", "liar")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, ok := conn.(*resumableConn); !ok {
		t.Fatalf("dial returned %T, want a resumable circuit", conn)
	}
	conn.SetDeadline(time.Now().Add(patience))
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	var b [5]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		t.Fatalf("read the echo: %v", err)
	}
	close(echoed)
	_, err = conn.Read(b[:])
	if !errors.Is(err, circuit.ErrResumeRefused) || !errors.Is(err, circuit.ErrIntegrity) {
		t.Fatalf("h's circuit after m answered its resume below what it acknowledged: %v, want ErrResumeRefused and ErrIntegrity", err)
	}
	if len(resumes) == 0 {
		t.Fatal("h never resumed the circuit")
	}
	t.Logf("h's circuit failed with: %v", err)
	if err := roundTrip(t, h, "m", EchoService, []byte("still here")); err != nil {
		t.Fatalf("h's next circuit to m: %v", err)
	}
}
