package circuit

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestAttackResumeBeyondSentRefused: a destination takes a resume only
// if its offset lies between what its writes were last acknowledged up
// to and the positions it sent (docs/PROTOCOL.md §3.9, Offsets). Here
// the destination's path failed before it sent anything, its application
// then wrote 15 bytes (queued, never sent), and a resume claims the
// source received all 15. The destination must refuse it (the source
// cannot have received bytes that never left), not drop those bytes from
// its retransmit buffer as delivered.
func TestAttackResumeBeyondSentRefused(t *testing.T) {
	g, c, dst := rawDest(t, func(c *Conn) Path { return c })
	go func() { _, _ = io.Copy(io.Discard, c.caller) }()
	var id [idLen]byte
	id[0] = 45
	if _, err := c.caller.Write(append([]byte{frameHello}, id[:]...)); err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, g.table, 1)
	crash(g.paths[0])
	waitFor(t, func() bool {
		dst.mu.Lock()
		defer dst.mu.Unlock()
		return dst.cur == nil || dst.ended
	})
	msg := []byte("never-sent-data")
	if _, err := dst.Write(msg); err != nil {
		t.Fatal(err)
	}
	dst.mu.Lock()
	sent, written := dst.sent, dst.written
	dst.mu.Unlock()
	if sent != 0 || written != int64(len(msg)) {
		t.Fatalf("setup: sent %d, written %d; want 0 and %d", sent, written, len(msg))
	}
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		_, _ = a.Write(binary.BigEndian.AppendUint64(append([]byte{frameResume}, id[:]...), uint64(len(msg))))
		_, _ = io.Copy(io.Discard, a)
	}()
	_, err := g.table.Resume(pipePath{b}, "s", "echo", time.Now().Add(5*time.Second))
	dst.mu.Lock()
	queued, acked := dst.sbuf.len(), dst.acked
	dst.mu.Unlock()
	if err == nil || !errors.Is(err, ErrIntegrity) {
		t.Fatalf("resume claiming %d positions received when the destination sent %d: Resume returned %v, want a refusal wrapping ErrIntegrity; "+
			"the destination now counts %d positions acknowledged and holds %d of the %d bytes its application wrote",
			len(msg), sent, err, acked, queued, len(msg))
	}
}
