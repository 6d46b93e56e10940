package links

import (
	"context"
	"encoding/binary"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// lineCounter counts the records at least at level min whose message
// holds sub.
type lineCounter struct {
	sub string
	n   *atomic.Int64
	min slog.Level
}

func (h lineCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h lineCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= h.min && strings.Contains(r.Message, h.sub) {
		h.n.Add(1)
	}
	return nil
}
func (h lineCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h lineCounter) WithGroup(string) slog.Handler      { return h }

// TestAttackProtocolErrorsLogOncePerPeer: a holder of a valid
// certificate links to b, sends one oversized control frame (b closes the
// link for a protocol error) and links again, for 5 s. b logged a WARN
// line for each: 223 in 5 s, about 45 a second, unbounded; now one per
// peer a minute, as for the links b closes for too many streams ended
// without an open.
func TestAttackProtocolErrorsLogOncePerPeer(t *testing.T) {
	ca := testCA(t, "m")
	var warns atomic.Int64
	a := newNode(t, issue(t, ca, "a"), nil)
	b := newNode(t, issue(t, ca, "b"), func(c *QUICConfig) {
		c.Logger = slog.New(lineCounter{"link protocol error", &warns, slog.LevelWarn})
	})
	var hdr [frameHeaderLen]byte
	hdr[0] = frameRouting
	binary.BigEndian.PutUint32(hdr[1:], MaxFrameSize+1)
	links, failed := 0, 0
	for start := time.Now(); time.Since(start) < 5*time.Second; {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		l, err := a.Dial(ctx, b.LocalAddr().String())
		cancel()
		if err != nil {
			failed++
			time.Sleep(10 * time.Millisecond)
			continue
		}
		links++
		rawControl(t, l, hdr[:])
		<-l.Done()
	}
	time.Sleep(200 * time.Millisecond)
	t.Logf("in 5 s: %d links set up and broken, %d dials refused; b logged %d WARN \"link protocol error\" lines", links, failed, warns.Load())
	if links < 3 {
		t.Fatalf("only %d links set up in 5 s: the attack did not run", links)
	}
	if warns.Load() > 2 {
		t.Errorf("one certificate holder made b log %d protocol-error WARN lines in 5 s", warns.Load())
	}
}
