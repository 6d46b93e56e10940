package links

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/quic-go/quic-go"
)

// openedStream links two nodes, a and b (la is a's link, lb b's), opens
// a circuit stream s on la and writes a byte on it, so that b sees the
// stream too.
func openedStream(t *testing.T) (a *node, la, lb Link, s Stream) {
	t.Helper()
	a, b, la := pair(t)
	lb = acceptedLink(t, b, "a")
	s, err := la.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	return a, la, lb, s
}

// TestAttackPeerCloseTextReachesStreamErrors: a neighbour closes the link's
// connection with a reason phrase carrying terminal control sequences
// (forgedReason), with the goodbye code 0x100 and with a code links does not
// name. The errors of the circuit streams that were open on the link, from
// Read and Write, and of a stream opened after the close, carry the reason
// cleaned (cleanPeerClose, by
// PeerText) as the link's own error does (TestPeerGoodbyeTextHasNoControls,
// TestPeerCloseTextHasNoControls): no ESC, BEL, CR or LF of the peer's
// reaches whatever logs or prints a circuit's error (docs/PROTOCOL.md §1.7).
// Before, mapStreamErr wrapped quic-go's ApplicationError as it came, and
// its text was the peer's reason as sent. Those errors, and the link's,
// do not match ErrClosed (a close of a's own; before, the stream errors
// did, through quic-go's error, as did the link's with code 0x1ff), and
// errors.As still finds quic-go's error in the stream errors.
func TestAttackPeerCloseTextReachesStreamErrors(t *testing.T) {
	for _, code := range []quic.ApplicationErrorCode{codeGoodbye, 0x1ff} {
		a, la, lb, s := openedStream(t)
		_ = lb.(*quicLink).conn.CloseWithError(code, forgedReason)
		a.rec.waitEvent(t, "down", patience)
		_, rerr := io.ReadAll(s)
		_, werr := s.Write([]byte("y"))
		_, oerr := la.OpenStream(context.Background()) // the link's error: it is down
		for what, err := range map[string]error{"link": la.Err(), "stream Read": rerr, "stream Write": werr, "OpenStream": oerr} {
			if err == nil {
				t.Errorf("code %#x: %s: no error", code, what)
				continue
			}
			msg := err.Error()
			t.Logf("code %#x: %s error: %q", code, what, msg)
			if what != "link" && !errors.Is(err, ErrLinkLost) {
				t.Errorf("code %#x: a's %s error does not wrap ErrLinkLost: %v", code, what, err)
			}
			// The peer closed the link, not a: not ErrClosed
			// (net.ErrClosed), which says a closed it.
			if errors.Is(err, ErrClosed) {
				t.Errorf("code %#x: a's %s error matches ErrClosed, a local close: %v", code, what, err)
			}
			var ae *quic.ApplicationError
			if what != "link" && what != "OpenStream" && (!errors.As(err, &ae) || ae.ErrorCode != code || !ae.Remote) {
				t.Errorf("code %#x: errors.As finds no remote QUIC close with the code in a's %s error: %v", code, what, err)
			}
			if i := controlAt(msg); i >= 0 {
				t.Errorf("code %#x: a's %s error carries the peer's control character %q at byte %d: %q", code, what, msg[i], i, msg)
			}
		}
	}
}

// TestAttackPeerCloseTextLengthInStreamErrors: the same path keeps at
// most the 512 bytes of the peer's reason phrase that docs/PROTOCOL.md
// §1.7 says a receiver keeps of it (before, all 1000 of them).
func TestAttackPeerCloseTextLengthInStreamErrors(t *testing.T) {
	a, la, lb, s := openedStream(t)
	long := strings.Repeat("z", 1000)
	_ = lb.(*quicLink).conn.CloseWithError(codeGoodbye, long)
	a.rec.waitEvent(t, "down", patience)
	_, rerr := io.ReadAll(s)
	if rerr == nil {
		t.Fatal("no read error")
	}
	kept := strings.Count(rerr.Error(), "z")
	t.Logf("link error keeps %d bytes of the reason, stream Read error %d", strings.Count(la.Err().Error(), "z"), kept)
	if kept > maxReasonLen {
		t.Fatalf("a's stream Read error keeps %d bytes of the peer's reason phrase, want at most %d", kept, maxReasonLen)
	}
}

// TestOpenStreamErrorCleansPeerClose: a stream opened or accepted while
// quic-go already has the peer's close, before the link is marked down,
// fails through opErr, which cleans the peer's reason as the link's own
// error does; it wrapped quic-go's error as it came, so the peer's ESC,
// BEL, CR and LF reached Dial's error and the relay's refusal reason.
func TestOpenStreamErrorCleansPeerClose(t *testing.T) {
	l := &quicLink{hello: helloMsg{Node: "b"}}
	for _, peer := range []error{
		&quic.ApplicationError{ErrorCode: 0x1ff, ErrorMessage: forgedReason, Remote: true},
		&quic.TransportError{ErrorCode: quic.ProtocolViolation, ErrorMessage: forgedReason, Remote: true},
	} {
		err := l.opErr("open stream", peer)
		if i := controlAt(err.Error()); i >= 0 {
			t.Errorf("opErr(%T) carries the peer's control character %q at byte %d: %q", peer, err.Error()[i], i, err)
		}
		if !errors.Is(err, ErrLinkLost) || errors.Is(err, ErrClosed) {
			t.Errorf("opErr(%T) = %v: wraps ErrLinkLost %v (want true), matches ErrClosed %v (want false)", peer, err, errors.Is(err, ErrLinkLost), errors.Is(err, ErrClosed))
		}
	}
}
