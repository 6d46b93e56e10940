package node

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/goleak"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestLoopLinkAfterCloseRefuses: once Close closed the loopback, loopLink
// returned no link and no error, and a self-dial went on with the nil
// link. Now it refuses as a node shutting down.
func TestLoopLinkAfterCloseRefuses(t *testing.T) {
	n, err := New(Config{Name: "q", Insecure: true, GracePeriod: -1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.Close()
	l, err := n.loopLink()
	if l != nil || !errors.Is(err, circuit.ErrShuttingDown) {
		t.Errorf("loopLink after Close: (%v, %v), want no link and an error matching circuit.ErrShuttingDown", l, err)
	}
}

// gateTracer holds the first span started after armed is set until gate
// is closed, saying so on held: a dial then waits past its check that
// the node is running.
type gateTracer struct {
	noop.Tracer
	armed      *atomic.Bool
	held, gate chan struct{}
}

func (g gateTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if g.armed.CompareAndSwap(true, false) {
		close(g.held)
		<-g.gate
	}
	return g.Tracer.Start(ctx, name, opts...)
}

// gateProvider provides gateTracer.
type gateProvider struct {
	noop.TracerProvider
	t gateTracer
}

func (p gateProvider) Tracer(string, ...trace.TracerOption) trace.Tracer { return p.t }

// TestSelfDialRacingCloseIsRefused: a Dial to the node's own name that
// passed the running check as Close ran to its end panicked (nil link in
// dialOn). Now it fails with the refusal of a node shutting down.
func TestSelfDialRacingCloseIsRefused(t *testing.T) {
	defer goleak.VerifyNone(t, append(leakIgnores, goleak.IgnoreCurrent())...)
	g := gateTracer{armed: &atomic.Bool{}, held: make(chan struct{}), gate: make(chan struct{})}
	n, err := New(Config{Name: "q", Insecure: true, GracePeriod: -1, Logger: testLogger(t), TracerProvider: gateProvider{t: g}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.armed.Store(true)
	res := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				res <- fmt.Errorf("panic: %v", r)
			}
		}()
		c, err := n.Dial(context.Background(), "q", EchoService)
		if err == nil {
			c.Close()
		}
		res <- err
	}()
	<-g.held // the dial is past its running check, starting its span
	n.Close()
	close(g.gate)
	if err := <-res; !errors.Is(err, circuit.ErrShuttingDown) {
		t.Errorf("self-dial racing Close: %v, want an error matching circuit.ErrShuttingDown", err)
	}
}
