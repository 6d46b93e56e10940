package node

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// A source with a valid certificate (or any relay: the trace context is
// not bound into the handshake) fills the open header's tracestate with
// as much as the 4 KiB header leaves: 13 entries of 256 bytes. Every
// later hop takes it into its span, exports it with the span and passes
// it on, so a few bytes of header make every node on the path store and
// export kilobytes per circuit in the operator's tracing backend. W3C
// Trace Context lets a hop drop entries beyond 512 bytes; a user wants a
// hop's span to carry no more than that of what another node wrote.
func TestRedteamTraceStateCarriedToEveryHop(t *testing.T) {
	c, rec := tracedCluster(t)
	c.build("a-r", "r-b")
	c.waitRoute("a", "b", 2)
	var members []string
	for i := range 13 {
		members = append(members, fmt.Sprintf("k%02d=%s", i, strings.Repeat("x", 252)))
	}
	ts, err := trace.ParseTraceState(strings.Join(members, ","))
	if err != nil {
		t.Fatal(err)
	}
	id := trace.TraceID{7, 7}
	ctx := trace.ContextWithRemoteSpanContext(ctxT(t, 10*time.Second), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: id, SpanID: trace.SpanID{7, 8}, TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
	}))
	if err := dialEcho(ctx, c.nodes["a"], "b", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	spans := traceSpans(t, rec, id, 3)
	for _, s := range spans {
		node := spanAttr(s, attrNode).AsString()
		if node == "a" {
			continue
		}
		if n := len(s.SpanContext().TraceState().String()); n > 512 {
			t.Errorf("%s's span carries %d bytes of trace state from the open header", node, n)
		}
	}
}
