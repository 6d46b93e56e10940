package links

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestAttackDuplicateNameCopiesInstance: the transport instance a node
// sends in its hello is no secret: every node it links to reads it. A
// second live node holding its own valid certificate for b that sends
// b's instance in its hello is still a second live node. Here z dialled
// b1 (the established b); b2, named b too, sends b1's instance and dials
// z, then redials. z refuses b2 as it refuses any second node named b
// ("refusing the newcomer"), keeps the established link however often b2
// redials, and both log the refusal at WARN, once; once b1's link ends,
// b2 is linked (as a node that reloaded its identity with a new key is,
// once the link of its old key ends). Before, z took b2 for another dial
// of b1 (same instance) and skipped the duplicate-name check; the two
// links were settled by dialler and dial nonce, b2's (dialled by b, which
// sorts before z) won, and the established link went down at Debug
// ("duplicate link") with no WARN: b2's dial succeeded and z's link to b
// was to b2. Now an instance is taken for the established node's only
// with a certificate of the established link's key.
func TestAttackDuplicateNameCopiesInstance(t *testing.T) {
	ca := testCA(t, "m")
	var zlog, blog logBuf
	var refusals atomic.Int64
	z := newNode(t, issue(t, ca, "z"), both(tolerant, logTo(&zlog), countRefusals(&refusals)))
	b1 := newNode(t, issue(t, ca, "b"), tolerant)
	b2 := newNode(t, issue(t, ca, "b"), both(tolerant, logTo(&blog), func(c *QUICConfig) { c.HandshakeTimeout = patience }))
	// b1 told z (and any node it linked to) this number in its hello.
	b2.instance = b1.instance

	dial(t, z, b1)
	b1.rec.waitEvent(t, "up", patience)
	est := z.Link("b")
	if est == nil {
		t.Fatal("z has no link to b")
	}
	estAddr := est.RemoteAddr().String()

	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	_, err := b2.Dial(ctx, z.LocalAddr().String())
	if err == nil {
		time.Sleep(500 * time.Millisecond) // let z report what it decided
	} else {
		// The newcomer keeps redialling; each dial is refused.
		stop := b2.Keep(z.LocalAddr().String())
		waitUntil(t, "3 more refusals of b2", func() bool { return refusals.Load() >= 4 })
		stop()
	}
	cur := z.Link("b")
	var problems []string
	if err == nil {
		problems = append(problems, "z accepted the second node named b (its dial succeeded)")
	} else if !strings.Contains(err.Error(), `another node named "b"`) {
		problems = append(problems, "b2's dial: "+err.Error()+", want a refusal naming the duplicate")
	}
	if cur == nil || cur.RemoteAddr().String() != estAddr {
		got := "<none>"
		if cur != nil {
			got = cur.RemoteAddr().String()
		}
		problems = append(problems, "z's link to b is now to "+got+", not the established b1 at "+estAddr)
	}
	if est.Err() != nil {
		problems = append(problems, "the established link was closed: "+est.Err().Error())
	}
	if ups, downs := z.rec.counts(); ups != 1 || downs != 0 {
		problems = append(problems, fmt.Sprintf("z saw %d LinkUp and %d LinkDown, want the established link's LinkUp alone", ups, downs))
	}
	if got := zlog.lines("link refused", "duplicate node name"); len(got) != 1 {
		problems = append(problems, fmt.Sprintf("z logged %d WARN lines refusing the second node named b, want 1", len(got)))
	}
	if got := blog.lines("link refused", "refusing the newcomer"); err != nil && len(got) != 1 {
		problems = append(problems, fmt.Sprintf("b2 logged %d WARN lines for its refusals, want 1", len(got)))
	}
	if len(problems) > 0 {
		t.Fatalf("a second live node named b sending b1's instance took b's link at z:\n  %s", strings.Join(problems, "\n  "))
	}

	// Once b1's link ends, b2 is linked.
	_ = b1.Close()
	z.rec.waitEvent(t, "down", patience)
	dial(t, b2, z)
	z.rec.waitEvent(t, "up", patience)
	if cur := z.Link("b"); cur == nil || !sameAddr(cur.RemoteAddr(), b2.LocalAddr()) {
		t.Fatal("z did not link to b2 once b1's link ended")
	}
}
