package circuit

import (
	"errors"
	"io"
	"testing"
	"time"
)

// dataFrame is a data frame carrying b, as the other end frames it.
func dataFrame(b []byte) []byte {
	return append([]byte{frameData, byte(len(b) >> 8), byte(len(b))}, b...)
}

// readAllWithin reads r until an error or d passed, returning what it got.
func readAllWithin(t *testing.T, r *Resumable, d time.Duration) ([]byte, error) {
	t.Helper()
	_ = r.SetReadDeadline(time.Now().Add(d))
	var got []byte
	buf := make([]byte, 64)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return got, err
		}
	}
}

// TestAttackDataAfterFinFailsTheCircuit: the fin is the last position of
// a direction (docs/PROTOCOL.md §3.9: "one per data byte and one for the
// fin"), so a data frame that follows it lies outside what the other end
// could have sent and fails the circuit with ErrIntegrity. The other end
// here sends its hello, "ab", its fin, then "XYZ" in the same record,
// and, in a second case, in a record of its own after the fin was read.
// Before, the destination's application read "abXYZ" then EOF: bytes
// after the end of the stream.
func TestAttackDataAfterFinFailsTheCircuit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		separate bool
	}{
		{"same record", false},
		{"later record", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c, dst := rawDest(t, func(c *Conn) Path { return c })
			go func() { _, _ = io.Copy(io.Discard, c.caller) }()
			var id [idLen]byte
			id[0] = 44
			frames := append([]byte{frameHello}, id[:]...)
			frames = append(frames, dataFrame([]byte("ab"))...)
			frames = append(frames, frameFin)
			if !tc.separate {
				frames = append(frames, dataFrame([]byte("XYZ"))...)
			}
			if _, err := c.caller.Write(frames); err != nil {
				t.Fatal(err)
			}
			finOrEnd := func() bool {
				dst.mu.Lock()
				defer dst.mu.Unlock()
				return dst.gotFin || dst.ended
			}
			waitFor(t, finOrEnd)
			if tc.separate {
				if _, err := c.caller.Write(dataFrame([]byte("XYZ"))); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, func() bool {
				dst.mu.Lock()
				defer dst.mu.Unlock()
				return dst.recv > 3 || dst.ended
			})
			got, rerr := readAllWithin(t, dst, 2*time.Second)
			_, werr := dst.Write([]byte("answer"))
			dst.mu.Lock()
			recv := dst.recv
			dst.mu.Unlock()
			if string(got) != "ab" || !(rerr == io.EOF || errors.Is(rerr, ErrIntegrity)) {
				t.Fatalf("data frame after the fin: the destination's application read %q then %v (positions received: %d); "+
					"want \"ab\" and nothing after it", got, rerr, recv)
			}
			if !errors.Is(werr, ErrIntegrity) {
				t.Fatalf("data frame after the fin: the circuit did not fail: a Write after it returned %v, want ErrIntegrity", werr)
			}
		})
	}
}
