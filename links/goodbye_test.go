package links

import (
	"testing"
	"time"
)

// TestCloseWithStalledWriter closes a link whose control writer is stuck
// (held here as a peer that gives no flow-control credit holds it): the
// goodbye is given up after its deadline and Close returns, instead of
// waiting on the writer for as long as it is stuck.
func TestCloseWithStalledWriter(t *testing.T) {
	_, _, la := pair(t)
	ql := la.(*quicLink)
	ql.writeMu.Lock() // the writer is stuck
	defer ql.writeMu.Unlock()
	closed := make(chan error, 1)
	go func() { closed <- la.Close("going away") }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close waited for the stuck writer")
	}
	select {
	case <-la.Done():
	default:
		t.Fatal("the link is not done after Close returned")
	}
}
