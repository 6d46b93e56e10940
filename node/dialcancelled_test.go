package node

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestDialWithEndedContextFails: an early Dial given a context already
// cancelled returned a circuit (the open is sent with the first Write),
// where every other Dial fails with the context's error. Now each fails
// before anything is sent, to a peer or to the node itself.
func TestDialWithEndedContextFails(t *testing.T) {
	c := newCluster(t, false)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, ctx := range []context.Context{cancelled, expired} {
		for _, peer := range []string{"b", "a"} {
			for _, opt := range []DialOptions{{}, {Early: true}, {NoResume: true}, {Early: true, NoResume: true}} {
				conn, err := c.nodes["a"].DialWith(ctx, peer, EchoService, opt)
				if conn != nil {
					conn.Close()
				}
				if !errors.Is(err, ctx.Err()) {
					t.Errorf("dial %s %+v with an ended context: %v, want an error matching %v", peer, opt, err, ctx.Err())
				}
			}
		}
	}
	c.closeAll()
}
