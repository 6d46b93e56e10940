package node

import (
	"testing"
)

// A destination that refuses resumed handshakes (it forgot its sessions,
// e.g. after a restart, or it issued more tickets to the source than it
// keeps) costs a dial one retry, never a failure, even when other opens
// store new tickets (the destination has forgotten as well) between the
// dial's attempts: the retry takes the one-message handshake, not the
// next ticket.
func TestDialRetryAfterRefusedResumeDoesNotResumeAgain(t *testing.T) {
	c := newCluster(t, true)
	var a *Node
	retries := 0
	c.tweak = func(cfg *Config) {
		switch cfg.Name {
		case "a":
			cfg.hooks = &hooks{beforeRetry: func() {
				// What a concurrent open does meanwhile: it finds no
				// ticket (the refused one was dropped), takes the
				// one-message handshake and stores the ticket b issues.
				retries++
				if err := roundTrip(t, a, "b", "svc", []byte("meanwhile")); err != nil {
					t.Errorf("the open between two attempts: %v", err)
				}
			}}
		case "b":
			cfg.hooks = &hooks{forgetSessions: true}
		}
	}
	c.build("a-b")
	c.tweak = nil
	a = c.nodes["a"]
	c.waitRoute("a", "b", 1)
	serve(t, c.nodes["b"], "svc", echoHandler)
	for range 2 { // a learns b's key, then holds a ticket
		if err := roundTrip(t, a, "b", "svc", []byte("warm")); err != nil {
			t.Fatal(err)
		}
	}
	if !a.seal.Load().Resumable("b") {
		t.Fatal("a holds no ticket for b after a one-message handshake")
	}
	if err := roundTrip(t, a, "b", "svc", []byte("ping")); err != nil {
		t.Fatalf("dial after a refused resumed handshake: %v", err)
	}
	if retries != 1 {
		t.Fatalf("the dial retried %d times, want once", retries)
	}
}
