package links

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	var b backoff
	ceil := keepMinBackoff
	for i := range 12 {
		w := b.next()
		if w < ceil/2 || w > ceil {
			t.Fatalf("wait %d: %v outside [%v, %v]", i, w, ceil/2, ceil)
		}
		ceil = min(2*ceil, keepMaxBackoff)
	}
	if ceil != 10*time.Second {
		t.Fatalf("backoff ceiling %v, want 10s", ceil)
	}
	b.reset()
	if w := b.next(); w > keepMinBackoff {
		t.Fatalf("after reset: %v", w)
	}
}

// TestKeepRedials keeps a static link to an address whose node comes and
// goes: the link comes back each time.
func TestKeepRedials(t *testing.T) {
	ca := testCA(t, "m")
	ida := issue(t, ca, "a")
	a := newNode(t, ida, nil)
	addr := a.LocalAddr().String()
	_ = a.Close()
	b := newNode(t, issue(t, ca, "b"), nil)
	stop := b.Keep(addr)
	defer stop()
	for i := range 2 {
		time.Sleep(300 * time.Millisecond) // b dials into nothing meanwhile
		a = newNode(t, ida, func(c *QUICConfig) { c.ListenAddr = addr })
		b.rec.waitEvent(t, "up", patience)
		if l := b.Link("a"); l == nil || !l.Outbound() {
			t.Fatalf("round %d: no outbound link to a", i)
		}
		_ = a.Close()
		b.rec.waitEvent(t, "down", patience)
	}
	stop()
	if ups, _ := b.rec.counts(); ups != 2 {
		t.Fatalf("%d links, want 2", ups)
	}
}

// TestKeepLogsAnUnreachableStaticLinkOnceAtInfo: an operator sees one INFO
// line when a static link cannot be reached, not one per retry.
func TestKeepLogsAnUnreachableStaticLinkOnceAtInfo(t *testing.T) {
	var buf lockedBuffer
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) {
		c.HandshakeTimeout = 200 * time.Millisecond
		c.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close() // nothing answers there
	stop := a.Keep(dead)
	defer stop()
	waitFor(t, "two failed redials", 20*time.Second, func() bool {
		return strings.Count(buf.String(), "static link dial failed") >= 2
	})
	stop()
	out := buf.String()
	if got := strings.Count(out, "level=INFO msg=\"static link down"); got != 1 {
		t.Fatalf("%d INFO lines for an unreachable static link, want exactly 1:\n%s", got, out)
	}
	if strings.Contains(out, "level=INFO msg=\"static link dial failed") {
		t.Fatalf("retries logged at INFO:\n%s", out)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent logging.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
