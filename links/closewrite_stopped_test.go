package links

import (
	"context"
	"errors"
	"io"
	"testing"
)

// A CloseWrite after the peer stopped the stream's write side
// (STOP_SENDING) fails as a Write would: with a *StreamResetError carrying
// the peer's code, which unwraps to ErrStreamReset.
func TestCloseWriteAfterPeerStopIsReset(t *testing.T) {
	_, b, la := pair(t)
	lb := acceptedLink(t, b, "a")
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	sa, err := la.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sa.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	sb, err := lb.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(sb, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	sb.CloseRead(7) // STOP_SENDING(7)
	// An empty Write sends nothing and fails once the stop arrived.
	waitFor(t, "the peer's STOP_SENDING", patience, func() bool {
		_, err := sa.Write(nil)
		return err != nil
	})
	err = sa.CloseWrite()
	var re *StreamResetError
	if !errors.As(err, &re) || re.Code != 7 || !re.Remote || !errors.Is(err, ErrStreamReset) {
		t.Fatalf("CloseWrite after the peer's STOP_SENDING(7) = %v, want a remote *StreamResetError code 7", err)
	}
	sb.Reset(1)
	sa.Reset(1)
}
