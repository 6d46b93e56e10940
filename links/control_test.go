package links

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// rawControl writes bytes on a link's control stream as a peer would.
func rawControl(t *testing.T, l Link, b []byte) {
	t.Helper()
	ql := l.(*quicLink)
	ql.writeMu.Lock()
	defer ql.writeMu.Unlock()
	if _, err := ql.ctrl.Write(b); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownFrameSkipped(t *testing.T) {
	_, b, la := pair(t)
	unknown, _ := appendFrame(nil, 0x7e, []byte("a frame type from the future"))
	routing, _ := appendFrame(nil, frameRouting, []byte("after"))
	rawControl(t, la, append(unknown, routing...))
	b.rec.waitEvent(t, "routing", patience)
	b.rec.mu.Lock()
	got := string(b.rec.routed[0])
	b.rec.mu.Unlock()
	if got != "after" || la.Err() != nil {
		t.Fatalf("routed %q, link error %v", got, la.Err())
	}
}

func TestOversizedFrameClosesLink(t *testing.T) {
	a, b, la := pair(t)
	var hdr [frameHeaderLen]byte
	hdr[0] = frameRouting
	binary.BigEndian.PutUint32(hdr[1:], MaxFrameSize+1)
	rawControl(t, la, hdr[:])
	b.rec.waitEvent(t, "down", patience)
	a.rec.waitEvent(t, "down", patience)
	b.rec.mu.Lock()
	berr := b.rec.errs[0]
	b.rec.mu.Unlock()
	if !errors.Is(berr, ErrLinkLost) || !errors.Is(berr, ErrFrameTooLarge) {
		t.Fatalf("receiver's link error: %v", berr)
	}
	if err := la.Err(); !errors.Is(err, ErrLinkLost) || !strings.Contains(err.Error(), "control frame too large") {
		t.Fatalf("sender's link error: %v", err)
	}
}

func TestSendRoutingQueueBounded(t *testing.T) {
	_, _, la := pair(t)
	ql := la.(*quicLink)
	ql.writeMu.Lock() // stall the writer
	var err error
	sent := 0
	for range 2*DefaultControlQueue + 2 {
		if err = la.SendRouting([]byte("x")); err != nil {
			break
		}
		sent++
	}
	ql.writeMu.Unlock()
	if !errors.Is(err, ErrQueueFull) {
		t.Fatalf("after %d payloads: %v, want ErrQueueFull", sent, err)
	}
	if sent < DefaultControlQueue || sent > DefaultControlQueue+1 {
		t.Fatalf("queued %d payloads before refusing, want about %d", sent, DefaultControlQueue)
	}
}
