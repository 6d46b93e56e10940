package memlink

import (
	"context"
	"testing"

	"github.com/circuitmesh/circuitmesh/links"
)

// A dial marked static (links.WithStatic) claims it in the acceptor's view
// of the dialler's hello; a plain dial does not.
func TestStaticDialSetsFeatureAtAcceptor(t *testing.T) {
	ns := newNodes(t, NewNetwork(Config{}), "a", "b", "c")
	if _, err := ns[0].t.Dial(links.WithStatic(context.Background()), "b"); err != nil {
		t.Fatal(err)
	}
	dial(t, ns[2].t, "b")
	if f := peerEnd(t, ns[1].t, "a").PeerFeatures(); f&links.FeatureStatic == 0 {
		t.Errorf("b sees features %#x from a's static dial", f)
	}
	if f := peerEnd(t, ns[1].t, "c").PeerFeatures(); f&links.FeatureStatic != 0 {
		t.Errorf("b sees features %#x from c's plain dial", f)
	}
	if f := peerEnd(t, ns[0].t, "b").PeerFeatures(); f&links.FeatureStatic != 0 {
		t.Errorf("the dialler sees features %#x from the acceptor", f)
	}
}
