package node

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestPingEndsWhenCancelledAfterDial: m, a member with a valid
// certificate, answers circuits to its echo service and reads what comes,
// but never echoes. h pings m with a context that has no deadline and
// cancels it a second later, as a caller that gives up does. Ping returns
// an error wrapping context.Canceled within seconds: it used to stay
// blocked in its Read for as long as m liked, because it applied ctx to
// the circuit only through ctx.Deadline, and a cancelled context has none.
func TestPingEndsWhenCancelledAfterDial(t *testing.T) {
	c := newCluster(t, true)
	c.build("h-m")
	h, m := c.nodes["h"], c.nodes["m"]
	m.mu.Lock()
	m.services[EchoService].handle = func(conn net.Conn) {
		defer conn.Close()
		io.Copy(io.Discard, conn) // acknowledges h's byte, never echoes it
	}
	m.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := h.Ping(ctx, "m")
		done <- err
	}()
	time.Sleep(time.Second)
	wantEndsOnCancel(t, "Ping", cancel, done)
}

// wantEndsOnCancel cancels a call's context and checks that the call
// (whose error done delivers) returns within 3 s, with an error wrapping
// context.Canceled.
func wantEndsOnCancel(t *testing.T, what string, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	cancelled := time.Now()
	select {
	case err := <-done:
		t.Logf("%s returned %v after the cancel: %v", what, time.Since(cancelled).Round(time.Millisecond), err)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s after its context was cancelled: %v, want context.Canceled", what, err)
		}
		if took := time.Since(cancelled); took > 3*time.Second {
			t.Errorf("%s returned %v after its context was cancelled", what, took.Round(time.Millisecond))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still blocked %v after its context was cancelled", what, time.Since(cancelled).Round(time.Millisecond))
	}
}
