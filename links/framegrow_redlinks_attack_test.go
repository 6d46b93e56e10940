package links

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

// TestAttackStalledFrameHoldsItsClaimedLength: a peer (a stranger before
// its hello was read, or a member on its control stream) announces a
// frame of MaxFrameSize (64 KiB) and sends 10 bytes of it. readFrame
// allocated the whole claimed length at once, so 5 bytes of header held
// 64 KiB for as long as the peer stalled (a handshake's timeout, or until
// the failure detector closes a link), on each of the node's 128
// handshake slots and each link. It must hold memory for the bytes that
// came.
func TestAttackStalledFrameHoldsItsClaimedLength(t *testing.T) {
	var wire bytes.Buffer
	var hdr [frameHeaderLen]byte
	hdr[0] = frameHello
	binary.BigEndian.PutUint32(hdr[1:], MaxFrameSize)
	wire.Write(hdr[:])
	wire.Write(make([]byte, 10))
	stalled := wire.Bytes()

	const frames = 16
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range frames {
		if _, err := readFrame(bytes.NewReader(stalled)); err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("a frame cut after 10 bytes: %v, want an unexpected EOF", err)
		}
	}
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / frames
	t.Logf("%d bytes allocated per frame announcing %d bytes and carrying 10", per, MaxFrameSize)
	if per >= MaxFrameSize/4 {
		t.Fatalf("reading a frame that announced %d bytes and carried 10 allocated %d bytes: the peer holds memory for what it claims, not what it sent", MaxFrameSize, per)
	}

	// A whole frame still reads whole.
	payload := bytes.Repeat([]byte("r"), MaxFrameSize)
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	f, err := readFrame(io.MultiReader(bytes.NewReader(hdr[:]), bytes.NewReader(payload)))
	if err != nil || !bytes.Equal(f.payload, payload) {
		t.Fatalf("a whole frame of %d bytes: %v, %d bytes read", len(payload), err, len(f.payload))
	}
}
