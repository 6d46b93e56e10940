package links

import (
	"testing"
	"time"
)

// The acceptor sees FeatureStatic on the links its peer keeps (Keep) and
// not on a plain dial.
func TestKeptLinksSayTheyAreStatic(t *testing.T) {
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), nil)
	b := newNode(t, issue(t, ca, "b"), nil)
	c := newNode(t, issue(t, ca, "c"), nil)
	dial(t, a, b)
	stop := c.Keep(b.LocalAddr().String())
	defer stop()
	var fromA, fromC Link
	waitFor(t, "b to accept both links", 10*time.Second, func() bool {
		for _, l := range b.Links() {
			switch l.Peer() {
			case "a":
				fromA = l
			case "c":
				fromC = l
			}
		}
		return fromA != nil && fromC != nil
	})
	if fromA.PeerFeatures()&FeatureStatic != 0 {
		t.Error("a plain dial claims static")
	}
	if fromC.PeerFeatures()&FeatureStatic == 0 {
		t.Error("a kept link does not claim static")
	}
	for _, l := range c.Links() {
		if l.PeerFeatures()&FeatureStatic != 0 {
			t.Error("the acceptor's hello claims static")
		}
	}
}
