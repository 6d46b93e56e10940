package node

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestListenersOfANodeNeverStartedCloseWithIt: a service published
// before Start, as a server set up before the node comes up does, is
// closed with the node when the node closes without having run (Close
// before Start, or a Start whose ctx ended first): its Accept returns
// net.ErrClosed and the service is no longer listed. Accept blocked for
// good, and the goroutine serving it (an http.Server, Expose's) never
// ended.
func TestListenersOfANodeNeverStartedCloseWithIt(t *testing.T) {
	for _, k := range []struct {
		name string
		end  func(n *Node)
	}{
		{"close before start", func(n *Node) { n.Close() }},
		{"start with an ended ctx", func(n *Node) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := n.Start(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("start with an ended ctx: %v, want context.Canceled", err)
			}
		}},
	} {
		t.Run(k.name, func(t *testing.T) {
			n, err := New(Config{Name: "a", Mesh: "test", Insecure: true, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := n.Listen("web")
			if err != nil {
				t.Fatal(err)
			}
			accepted := make(chan error, 1)
			go func() {
				_, err := ln.Accept()
				accepted <- err
			}()
			k.end(n)
			select {
			case err := <-accepted:
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("Accept after the node closed: %v, want net.ErrClosed", err)
				}
			case <-time.After(patience):
				ln.Close() // ends the goroutine
				t.Errorf("Accept still blocked %v after the node closed", patience)
			}
			if s := n.Services(); len(s) != 0 {
				t.Errorf("services of the closed node: %v, want none", s)
			}
		})
	}
}

// TestBuiltinServicesReservedBeforeStart: Listen on the echo service, or
// on the info service of a node that answers it, fails with
// ErrServiceInUse before Start as after it; with DisableInfo the info
// service is the application's to serve. Before, a Listen("echo") before
// Start took the name: Start logged "built-in service unavailable", and
// every ping and echo to the node went to the application's listener.
func TestBuiltinServicesReservedBeforeStart(t *testing.T) {
	for _, disableInfo := range []bool{false, true} {
		n, err := New(Config{Name: "x", Mesh: "test", Insecure: true, DisableInfo: disableInfo, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if ln, err := n.Listen(EchoService); !errors.Is(err, ErrServiceInUse) {
			t.Errorf("Listen(%q) before Start: listener %v, error %v; want ErrServiceInUse", EchoService, ln, err)
		}
		ln, err := n.Listen(InfoService)
		switch {
		case disableInfo && err != nil:
			t.Errorf("Listen(%q) before Start with DisableInfo: %v", InfoService, err)
		case !disableInfo && !errors.Is(err, ErrServiceInUse):
			t.Errorf("Listen(%q) before Start: listener %v, error %v; want ErrServiceInUse", InfoService, ln, err)
		}
		n.Close()
	}
}
