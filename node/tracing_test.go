package node

import (
	"context"
	"errors"
	"io"
	"sort"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// tracedCluster is a QUIC cluster whose nodes record their spans in rec.
func tracedCluster(t *testing.T) (*cluster, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	c := newCluster(t, true)
	c.tp = tp
	return c, rec
}

// traceSpans waits until rec holds want ended spans of trace id and
// returns them ordered by hop.
func traceSpans(t *testing.T, rec *tracetest.SpanRecorder, id trace.TraceID, want int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var spans []sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID() == id {
				spans = append(spans, s)
			}
		}
		if len(spans) >= want || time.Now().After(deadline) {
			sort.Slice(spans, func(i, j int) bool {
				return spanAttr(spans[i], attrHop).AsInt64() < spanAttr(spans[j], attrHop).AsInt64()
			})
			if len(spans) != want {
				t.Fatalf("trace %s has %d ended spans, want %d: %v", id, len(spans), want, describeSpans(spans))
			}
			return spans
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func spanAttr(s sdktrace.ReadOnlySpan, k attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func hasEvent(s sdktrace.ReadOnlySpan, name string, attrs ...attribute.KeyValue) bool {
	for _, e := range s.Events() {
		if e.Name != name {
			continue
		}
		ok := true
		for _, want := range attrs {
			found := false
			for _, kv := range e.Attributes {
				found = found || kv == want
			}
			ok = ok && found
		}
		if ok {
			return true
		}
	}
	return false
}

func describeSpans(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name()+"@"+spanAttr(s, attrNode).AsString()+" hop "+spanAttr(s, attrHop).Emit()+
			" status "+s.Status().Code.String()+" "+spanAttr(s, "error.type").Emit())
	}
	return out
}

// checkChain asserts that spans (ordered by hop) are one chain: each span
// the child of the previous hop's, on the nodes named, with the span names
// and kinds of dial, forward..., accept.
func checkChain(t *testing.T, spans []sdktrace.ReadOnlySpan, nodes ...string) {
	t.Helper()
	for i, s := range spans {
		name, kind := spanForward, trace.SpanKindInternal
		switch {
		case i == 0:
			name, kind = spanDial, trace.SpanKindClient
		case i == len(nodes)-1:
			name, kind = spanAccept, trace.SpanKindServer
		}
		if got := spanAttr(s, attrNode).AsString(); got != nodes[i] || s.Name() != name || s.SpanKind() != kind ||
			spanAttr(s, attrHop).AsInt64() != int64(i) {
			t.Fatalf("hop %d: span %s (%s) at %s with hop %d; want %s (%s) at %s: %v", i, s.Name(), s.SpanKind(), got,
				spanAttr(s, attrHop).AsInt64(), name, kind, nodes[i], describeSpans(spans))
		}
		switch {
		case i > 0 && s.Parent().SpanID() != spans[i-1].SpanContext().SpanID():
			t.Fatalf("the span of hop %d (%s) is not a child of hop %d's: %v", i, nodes[i], i-1, describeSpans(spans))
		case i > 0 && !s.Parent().IsRemote():
			t.Fatalf("the span of hop %d has a local parent", i)
		}
		if spanAttr(s, "network.transport").AsString() != "quic" || spanAttr(s, "server.address").AsString() != spanAttr(s, attrDest).AsString() {
			t.Fatalf("span of %s lacks network.transport=quic or server.address: %v", nodes[i], s.Attributes())
		}
	}
}

// dialEcho sends msg to to's echo service from ctx and reads it back.
func dialEcho(ctx context.Context, from *Node, to string, msg []byte) error {
	c, err := from.Dial(ctx, to, EchoService)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write(msg); err != nil {
		return err
	}
	c.(Conn).CloseWrite()
	got, err := io.ReadAll(c)
	if err == nil && string(got) != string(msg) {
		err = errors.New("echo mismatch")
	}
	return err
}

func TestTraceChainHopsKindsAndEvents(t *testing.T) {
	c, rec := tracedCluster(t)
	c.build("a-r1", "r1-r2", "r2-b")
	c.waitRoute("a", "b", 3)
	// A dial without a parent span starts a trace of its own.
	if err := roundTrip(t, c.nodes["a"], "b", EchoService, []byte("traced")); err != nil {
		t.Fatal(err)
	}
	var id trace.TraceID
	deadline := time.Now().Add(20 * time.Second)
	for !id.IsValid() {
		for _, s := range rec.Ended() {
			if s.Name() == spanDial {
				id = s.SpanContext().TraceID()
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no dial span ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	spans := traceSpans(t, rec, id, 4)
	checkChain(t, spans, "a", "r1", "r2", "b")
	for _, s := range spans {
		if s.Status().Code != codes.Unset {
			t.Errorf("span of %s has status %v on a clean circuit", spanAttr(s, attrNode).AsString(), s.Status())
		}
	}
	dial, relay, accept := spans[0], spans[1], spans[3]
	accepted := attrResult.String("accepted")
	switch {
	case !hasEvent(dial, eventOpenSent, attrPeer.String("r1")):
		t.Errorf("dial span has no open_sent event toward r1: %v", dial.Events())
	case !hasEvent(dial, eventResult, accepted, attrResultNode.String("b")):
		t.Errorf("dial span has no accepted result event: %v", dial.Events())
	case !hasEvent(dial, eventHalfClose, attrDir.String("up")):
		t.Errorf("dial span has no half_close event: %v", dial.Events())
	case !hasEvent(relay, eventOpenSent, attrPeer.String("r2")):
		t.Errorf("relay span has no open_sent event toward r2: %v", relay.Events())
	case !hasEvent(relay, eventHalfClose, attrDir.String("up")) || !hasEvent(relay, eventHalfClose, attrDir.String("down")):
		t.Errorf("relay span lacks a half_close event per direction: %v", relay.Events())
	case !hasEvent(accept, eventResult, accepted):
		t.Errorf("accept span has no result event: %v", accept.Events())
	}
	if a := spanAttr(dial, "network.peer.address").AsString(); a != "127.0.0.1" {
		t.Errorf("dial span's network.peer.address is %q, want the next hop's 127.0.0.1", a)
	}
	if p := spanAttr(dial, attrPeer).AsString(); p != "r1" {
		t.Errorf("dial span's peer is %q, want r1", p)
	}
	if spanAttr(relay, attrFrom).AsString() != "a" || spanAttr(relay, attrPeer).AsString() != "r2" {
		t.Errorf("relay span's from/peer: %v", relay.Attributes())
	}
}

// Only the hop that refused a circuit, and the caller, mark their spans
// as failed; the relays that carried the refusal back do not.
func TestTraceRefusalMarksOnlyTheRefuserAndTheCaller(t *testing.T) {
	c, rec := tracedCluster(t)
	c.build("a-r1", "r1-r2", "r2-b")
	c.waitRoute("a", "b", 3)
	tracer := sdktrace.NewTracerProvider().Tracer("test")

	// The destination refuses: no such service.
	ctx, root := tracer.Start(ctxT(t, 10*time.Second), "caller")
	root.End()
	if _, err := c.nodes["a"].Dial(ctx, "b", "nothing"); !errors.Is(err, circuit.ErrNoService) {
		t.Fatalf("dial of a missing service: %v", err)
	}
	spans := traceSpans(t, rec, root.SpanContext().TraceID(), 4)
	checkChain(t, spans, "a", "r1", "r2", "b")
	if spans[0].Parent().SpanID() != root.SpanContext().SpanID() {
		t.Fatalf("the dial span is not a child of the caller's span")
	}
	wantStatus(t, spans, "no_such_service", true, false, false, true)

	// A relay refuses: the hop limit runs out at r2.
	ctx, root = tracer.Start(ctxT(t, 10*time.Second), "caller")
	root.End()
	if _, err := c.nodes["a"].DialWith(ctx, "b", EchoService, DialOptions{HopLimit: 1}); !errors.Is(err, circuit.ErrHopLimit) {
		t.Fatalf("dial with hop limit 1 over two relays: %v", err)
	}
	spans = traceSpans(t, rec, root.SpanContext().TraceID(), 3)
	checkChain(t, spans, "a", "r1", "r2", "")
	wantStatus(t, spans, "hop_limit_exceeded", true, false, true)
	if !hasEvent(spans[0], eventResult, attrResult.String("hop_limit_exceeded"), attrResultNode.String("r2")) {
		t.Errorf("the dial span's result event does not name r2's refusal: %v", spans[0].Events())
	}
}

// wantStatus checks which spans (by hop) are ERROR with error.type typ and
// that the others are not failed.
func wantStatus(t *testing.T, spans []sdktrace.ReadOnlySpan, typ string, failed ...bool) {
	t.Helper()
	for i, s := range spans {
		isErr := s.Status().Code == codes.Error
		if isErr != failed[i] || failed[i] && spanAttr(s, "error.type").AsString() != typ {
			t.Errorf("hop %d (%s): status %v error.type %q; want failed=%v with %q: %v", i, spanAttr(s, attrNode).AsString(),
				s.Status(), spanAttr(s, "error.type").AsString(), failed[i], typ, describeSpans(spans))
		}
	}
}

// The sampling decision made at the source holds on every hop: relays
// and the destination record a sampled circuit and skip an unsampled one.
func TestTraceSamplingDecisionCarriedAcrossHops(t *testing.T) {
	c, rec := tracedCluster(t) // every node samples what its parent sampled
	c.build("a-r1", "r1-b")
	c.waitRoute("a", "b", 2)
	parent := func(id byte, flags trace.TraceFlags) context.Context {
		return trace.ContextWithRemoteSpanContext(ctxT(t, 10*time.Second), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{id, 1}, SpanID: trace.SpanID{id, 2}, TraceFlags: flags, Remote: true,
		}))
	}
	if err := dialEcho(parent(1, 0), c.nodes["a"], "b", []byte("not sampled")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "r1", "b"} {
		waitFor(t, name+"'s circuits to end", 20*time.Second, func() bool { return c.nodes[name].circuits.len() == 0 })
	}
	if err := dialEcho(parent(2, trace.FlagsSampled), c.nodes["a"], "b", []byte("sampled")); err != nil {
		t.Fatal(err)
	}
	spans := traceSpans(t, rec, trace.TraceID{2, 1}, 3)
	checkChain(t, spans, "a", "r1", "b")
	// The unsampled circuit ended before the sampled one began: had any
	// hop recorded it (in its trace or in a new one), it would be here.
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() != (trace.TraceID{2, 1}) {
			t.Fatalf("%s recorded a span of the unsampled circuit: %v", spanAttr(s, attrNode).AsString(), describeSpans(rec.Ended()))
		}
	}
}

// A relay that resets an open circuit (here because it shuts down) marks
// its span, and the caller's, as failed; the other hops do not.
func TestTraceResetMarksOnlyTheProducerAndTheCaller(t *testing.T) {
	c, rec := tracedCluster(t)
	c.build("a-r1", "r1-r2", "r2-b")
	c.waitRoute("a", "b", 3)
	ctx, root := sdktrace.NewTracerProvider().Tracer("test").Start(ctxT(t, 10*time.Second), "caller")
	root.End()
	conn, err := c.nodes["a"].DialWith(ctx, "b", EchoService, DialOptions{NoResume: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	c.nodes["r2"].Close() // resets the circuit after its grace period
	if _, err := io.ReadAll(conn); !errors.Is(err, circuit.ErrShuttingDown) {
		t.Fatalf("read after the relay closed: %v, want a shutting-down reset", err)
	}
	conn.Close()
	spans := traceSpans(t, rec, root.SpanContext().TraceID(), 4)
	checkChain(t, spans, "a", "r1", "r2", "b")
	wantStatus(t, spans, "shutting_down", true, false, true, false)
}

// When a relay dies under a resumable circuit, the path that takes the
// circuit over carries the resumed event at both of its ends: the dial
// span at the source and the accept span at the destination, each on the
// path through the surviving relay.
func TestTraceResumeEventAtBothEnds(t *testing.T) {
	c, rec := tracedCluster(t)
	sockets := buildDiamond(t, c)
	serve(t, c.nodes["d"], "stream", func(conn io.ReadWriteCloser) { io.Copy(conn, conn) })
	conn, err := c.nodes["a"].Dial(ctxT(t, 10*time.Second), "d", "stream")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	echo := func(msg string) {
		t.Helper()
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatalf("write %q: %v", msg, err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
			t.Fatalf("echo of %q: %q, %v", msg, got, err)
		}
	}
	echo("before")
	sockets["b"].Close() // b's process dies
	echo("after")        // on the path through c
	conn.Close()

	resumed := func(s sdktrace.ReadOnlySpan) bool { return hasEvent(s, eventResumed) }
	var dial, accept sdktrace.ReadOnlySpan
	waitFor(t, "the resumed path's dial and accept spans", 20*time.Second, func() bool {
		dial, accept = nil, nil
		for _, s := range rec.Ended() {
			switch {
			case s.Name() == spanDial && resumed(s):
				dial = s
			case s.Name() == spanAccept && resumed(s):
				accept = s
			}
		}
		return dial != nil && accept != nil
	})
	var first sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == spanDial && !resumed(s) && spanAttr(s, attrNode).AsString() == "a" {
			first = s
		}
	}
	if first == nil {
		t.Fatal("no span of the first path's dial")
	}
	if got, want := dial.SpanContext().TraceID(), first.SpanContext().TraceID(); got != want {
		t.Errorf("the resumed path is in trace %s, the circuit's first path in %s", got, want)
	}
	if got, want := dial.Parent().SpanID(), first.SpanContext().SpanID(); got != want {
		t.Errorf("the resumed dial span's parent is %s, want the first dial span %s", got, want)
	}
	if got, want := accept.SpanContext().TraceID(), first.SpanContext().TraceID(); got != want {
		t.Errorf("the resumed accept span is in trace %s, the circuit's first path in %s", got, want)
	}
	if p := spanAttr(dial, attrPeer).AsString(); p != "c" || spanAttr(dial, attrNode).AsString() != "a" {
		t.Errorf("the resumed dial span is at %s toward %s, want at a toward c", spanAttr(dial, attrNode).AsString(), p)
	}
	if p := spanAttr(accept, attrPeer).AsString(); p != "c" || spanAttr(accept, attrNode).AsString() != "d" {
		t.Errorf("the resumed accept span is at %s from %s, want at d from c", spanAttr(accept, attrNode).AsString(), p)
	}
	for _, s := range []sdktrace.ReadOnlySpan{dial, accept} {
		for _, e := range s.Events() {
			if e.Name != eventResumed {
				continue
			}
			keys := map[attribute.Key]bool{}
			for _, kv := range e.Attributes {
				keys[kv.Key] = true
			}
			if !keys[attrResumeStall] || !keys[attrResumeAttempts] || !keys[attrResumeCause] {
				t.Errorf("the resumed event of %s lacks its stall, attempts or cause: %v", s.Name(), e.Attributes)
			}
		}
	}
}
