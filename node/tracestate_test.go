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
// as much as the 4 KiB header leaves: a short entry, then 13 entries of
// 256 bytes. Each later hop keeps at most 512 bytes of it in its span,
// and so passes on no more, while the short entry at the front survives.
func TestTraceStateCutTo512BytesAtEveryHop(t *testing.T) {
	c, rec := tracedCluster(t)
	c.build("a-r", "r-b")
	c.waitRoute("a", "b", 2)
	members := []string{"app=ok"}
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
		got := s.SpanContext().TraceState()
		if n := len(got.String()); n > maxTraceState {
			t.Errorf("%s's span carries %d bytes of trace state from the open header", node, n)
		}
		if got.Get("app") != "ok" {
			t.Errorf("%s's span lost the short first tracestate entry: %q", node, got.String())
		}
	}
}

func TestCapTraceStateDropsWholeEntriesBigOnesFirst(t *testing.T) {
	big := func(k string) string { return k + "=" + strings.Repeat("v", 200) }
	small := func(k string) string { return k + "=" + strings.Repeat("s", 60) }
	var many []string
	for i := range 20 {
		many = append(many, small(fmt.Sprintf("m%02d", i)))
	}
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", ""},
		{"fits", big("a") + "," + big("b"), big("a") + "," + big("b")},
		{"exactly 512", strings.Repeat("x", 508) + "=1", strings.Repeat("x", 508) + "=1"},
		{"big ones go first, from the right", big("a") + "," + small("b") + "," + big("c") + "," + small("d"),
			big("a") + "," + small("b") + "," + small("d")},
		{"then any from the right", strings.Join(many, ","), strings.Join(many[:7], ",")},
		{"one entry too big", strings.Repeat("x", 600) + "=1", ""},
		{"blank entries and spaces", " a=1 ,, " + strings.Repeat("x", 600) + "=1 ,b=2", "a=1,b=2"},
	} {
		got := capTraceState(tc.in)
		if got != tc.want {
			t.Errorf("%s: got %q (%d bytes), want %q", tc.name, got, len(got), tc.want)
		}
		if len(got) > maxTraceState {
			t.Errorf("%s: %d bytes", tc.name, len(got))
		}
	}
}
