package links

import (
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/quic-go/quic-go"
)

// forgedReason is what a peer may put in a goodbye or refusal: an OSC
// window title and clipboard write, a carriage return and erase-line
// that overwrite what was printed before, and a forged log line.
const forgedReason = "\x1b]0;owned\x07\x1b]52;c;ZXZpbAo=\x07\r\x1b[2Kall good\nlevel=INFO msg=forged\x9b2J"

func controlAt(s string) int {
	return strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) })
}

// TestPeerGoodbyeTextHasNoControls: a neighbour closes its link with a
// goodbye whose reason carries terminal control sequences. The link's
// error, which the node logs, publishes in its LinkDown event and the
// CLI prints, carries the reason with every control character replaced:
// a peer may end a link, not write to the operator's terminal.
func TestPeerGoodbyeTextHasNoControls(t *testing.T) {
	a, b, la := pair(t)
	lb := b.Link("a")
	if lb == nil {
		t.Fatal("b has no link to a")
	}
	lb.Close(forgedReason)
	a.rec.waitEvent(t, "down", patience)
	msg := la.Err().Error()
	t.Logf("a's link error: %q", msg)
	if i := controlAt(msg); i >= 0 {
		t.Errorf("a's link error carries control character %q at byte %d of %q", msg[i], i, msg)
	}
	if !strings.Contains(msg, "all good") {
		t.Errorf("a's link error lost the printable part of the reason: %q", msg)
	}
}

// TestPeerCloseTextHasNoControls: a neighbour closes the connection with
// a code the link does not name, so its reason would reach the link's
// error inside the QUIC error's own text; it is cleaned all the same, and
// so is the reason of a transport close the peer sends.
func TestPeerCloseTextHasNoControls(t *testing.T) {
	a, b, la := pair(t)
	lb, ok := b.Link("a").(*quicLink)
	if !ok {
		t.Fatal("b has no QUIC link to a")
	}
	_ = lb.conn.CloseWithError(0x1ff, forgedReason)
	a.rec.waitEvent(t, "down", patience)
	var ae *quic.ApplicationError
	if err := la.Err(); !errors.Is(err, ErrLinkLost) || !errors.As(err, &ae) || ae.ErrorCode != 0x1ff {
		t.Errorf("a's link error %v: want ErrLinkLost wrapping the peer's close with code 0x1ff", err)
	}
	te := &quic.TransportError{Remote: true, ErrorCode: quic.ProtocolViolation, ErrorMessage: forgedReason}
	for _, err := range []error{la.Err(), cleanPeerClose(te)} {
		msg := err.Error()
		t.Logf("error: %q", msg)
		if i := controlAt(msg); i >= 0 {
			t.Errorf("error carries control character %q at byte %d of %q", msg[i], i, msg)
		}
		if !strings.Contains(msg, "all good") {
			t.Errorf("error lost the printable part of the reason: %q", msg)
		}
	}
	if !errors.Is(cleanPeerClose(te), te) {
		t.Error("a cleaned transport close does not unwrap to the QUIC error")
	}
}

func TestPeerText(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"plain reason: 1 ✓":      "plain reason: 1 ✓",
		"a\x1b[2Kb":              "a?[2Kb",
		"line\nnext\r":           "line?next?",
		"bad utf8 \xff\xfe end":  "bad utf8 ?? end",
		"c1 \u009b csi":          "c1 ? csi",
		"bidi \u202e gnirts":     "bidi ? gnirts",
		strings.Repeat("x", 600): strings.Repeat("x", maxReasonLen),
		strings.Repeat("é", 300): strings.Repeat("é", maxReasonLen/2),
	} {
		if got := PeerText(in); got != want {
			t.Errorf("PeerText(%q) = %q, want %q", in, got, want)
		}
	}
}
