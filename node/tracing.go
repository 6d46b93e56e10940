package node

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

const tracerName = "github.com/circuitmesh/circuitmesh/node"

// Span attribute keys, one set for every hop of a circuit. OpenTelemetry
// semantic-convention keys (network.*, server.address, error.type) are
// used where one exists.
const (
	attrNode       = attribute.Key("circuitmesh.node")
	attrPeer       = attribute.Key("circuitmesh.peer") // the neighbour toward the destination (dial, relay) or the source (accept)
	attrFrom       = attribute.Key("circuitmesh.from") // at a relay: the neighbour the circuit came from
	attrDest       = attribute.Key("circuitmesh.dest")
	attrSource     = attribute.Key("circuitmesh.source")
	attrService    = attribute.Key("circuitmesh.service")
	attrHop        = attribute.Key("circuitmesh.hop")
	attrResult     = attribute.Key("circuitmesh.result")
	attrBytesUp    = attribute.Key("circuitmesh.bytes_up")   // toward the destination
	attrBytesDn    = attribute.Key("circuitmesh.bytes_down") // toward the source
	attrCloseErr   = attribute.Key("circuitmesh.close_reason")
	attrResultNode = attribute.Key("circuitmesh.result_node") // the node that produced the result
	attrDir        = attribute.Key("circuitmesh.direction")   // of a half-close: up (toward the destination) or down
)

// Span event names.
const (
	eventOpenSent  = "open_sent"  // the open header went to the next hop
	eventResult    = "result"     // the circuit's result: accepted or a refusal
	eventHalfClose = "half_close" // one direction ended cleanly
)

// Span names, one per role on the path.
const (
	spanDial    = "circuitmesh.dial"
	spanForward = "circuitmesh.forward"
	spanAccept  = "circuitmesh.accept"
)

var traceContext = propagation.TraceContext{}

// injectTrace writes the span context of ctx into the open header, so the
// next hop's span is a child of this hop's. An unsampled span context
// travels too: the next hop follows the decision.
func injectTrace(ctx context.Context, o *circuit.Open) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		o.TraceParent, o.TraceState = "", "" // what Inject writes for it, without its map
		return
	}
	c := propagation.MapCarrier{}
	traceContext.Inject(ctx, c)
	o.TraceParent = c["traceparent"]
	o.TraceState = c["tracestate"]
}

// extractTrace returns a context carrying the header's remote span context
// (the previous hop's span), its tracestate cut to maxTraceState bytes by
// capTraceState: what this hop's span records and passes on.
func extractTrace(o *circuit.Open) context.Context {
	if o.TraceParent == "" {
		return context.Background()
	}
	c := propagation.MapCarrier{"traceparent": o.TraceParent}
	if ts := capTraceState(o.TraceState); ts != "" {
		c["tracestate"] = ts
	}
	return traceContext.Extract(context.Background(), c)
}

// maxTraceState bounds the tracestate a hop takes from an open header, in
// bytes, commas included: the 512 that W3C Trace Context asks every hop to
// pass on at least.
const maxTraceState = 512

// bigTraceStateEntry: entries longer than this are dropped first when a
// tracestate is cut (W3C Trace Context, tracestate limits).
const bigTraceStateEntry = 128

// capTraceState returns tracestate header s within maxTraceState bytes by
// dropping whole entries, as W3C Trace Context allows: entries longer than
// bigTraceStateEntry bytes from the right first, then any from the right.
// The entries kept stay in order; s is returned unchanged when it fits.
func capTraceState(s string) string {
	if len(s) <= maxTraceState {
		return s
	}
	var entries []string
	size := -1 // no comma before the first entry
	for e := range strings.SplitSeq(s, ",") {
		if e = strings.Trim(e, " \t"); e != "" {
			entries = append(entries, e)
			size += len(e) + 1
		}
	}
	for i := len(entries) - 1; i >= 0 && size > maxTraceState; i-- {
		if len(entries[i]) > bigTraceStateEntry {
			size -= len(entries[i]) + 1
			entries = append(entries[:i], entries[i+1:]...)
		}
	}
	for len(entries) > 0 && size > maxTraceState {
		size -= len(entries[len(entries)-1]) + 1
		entries = entries[:len(entries)-1]
	}
	return strings.Join(entries, ",")
}

// startHop starts the span of this node's hop of circuit o (hop: 0 at the
// source, 1 at the first relay, ...; from: at a relay, the neighbour the
// circuit came from), with its attributes given at the start, where a
// sampler sees them. A node whose tracer provider is the no-op one skips
// building them: its spans record nothing.
func (n *Node) startHop(ctx context.Context, name string, kind trace.SpanKind, o *circuit.Open, hop int, from string) (context.Context, trace.Span) {
	if n.traceOff {
		return n.tracer.Start(ctx, name)
	}
	attrs := hopAttrs(n.cfg.Name, o, hop)
	if from != "" {
		attrs = append(attrs, attrFrom.String(from))
	}
	return n.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// hopAttrs are the attributes of the span of this node at position hop on
// the circuit (0 at the source, 1 at the first relay, ...).
func hopAttrs(self string, o *circuit.Open, hop int) []attribute.KeyValue {
	return []attribute.KeyValue{
		attrNode.String(self), attrDest.String(o.Dest), attrSource.String(o.Source),
		attrService.String(o.Service), attrHop.Int(hop),
		semconv.ServerAddress(o.Dest), semconv.NetworkTransportKey.String("quic"),
	}
}

// setLinkAttrs sets linkAttrs(l) on span when it records: formatting the
// address is most of an open's tracing cost when tracing is off.
func setLinkAttrs(span trace.Span, l links.Link) {
	if span.IsRecording() {
		span.SetAttributes(linkAttrs(l)...)
	}
}

// linkAttrs name the neighbour on link l: its node name and its address.
func linkAttrs(l links.Link) []attribute.KeyValue {
	kv := []attribute.KeyValue{attrPeer.String(l.Peer())}
	if a := l.RemoteAddr(); a != nil {
		if host, port, err := net.SplitHostPort(a.String()); err == nil {
			kv = append(kv, semconv.NetworkPeerAddress(host))
			if p, err := strconv.Atoi(port); err == nil {
				kv = append(kv, semconv.NetworkPeerPort(p))
			}
		}
	}
	return kv
}

// spanResult adds the result event: code is the snake_case result
// (accepted or a refusal code) and by the node that produced it.
func spanResult(span trace.Span, code, by string) {
	if !span.IsRecording() {
		return // the event and its attributes would be dropped: save building them
	}
	span.AddEvent(eventResult, trace.WithAttributes(attrResult.String(code), attrResultNode.String(by)))
}

// openSent adds the event of the open header going to next hop nh.
func openSent(span trace.Span, nh string) {
	if span.IsRecording() {
		span.AddEvent(eventOpenSent, trace.WithAttributes(attrPeer.String(nh)))
	}
}

// halfClose adds the half-close event of one direction.
func halfClose(span trace.Span, up bool) {
	if !span.IsRecording() {
		return
	}
	dir := "down"
	if up {
		dir = "up"
	}
	span.AddEvent(eventHalfClose, trace.WithAttributes(attrDir.String(dir)))
}

// refusedSpan ends the span of a hop that refused the circuit itself: it
// is where the failure was produced, so the status is ERROR.
func refusedSpan(span trace.Span, self string, code circuit.Code, reason string) {
	if !span.IsRecording() {
		span.End()
		return
	}
	label := codeLabel(code)
	spanResult(span, label, self)
	span.SetAttributes(attrResult.String(label), semconv.ErrorTypeKey.String(label))
	span.SetStatus(codes.Error, reason)
	span.End()
}

// endSpan records the outcome of one hop and ends its span. err, when not
// nil, is a failure this hop produced or (at the ends) saw: the span's
// status becomes ERROR with error.type.
func endSpan(span trace.Span, result string, up, down int64, err error) {
	if !span.IsRecording() {
		span.End()
		return
	}
	span.SetAttributes(attrResult.String(result), attrBytesUp.Int64(up), attrBytesDn.Int64(down))
	if err != nil {
		span.SetAttributes(attrCloseErr.String(err.Error()), semconv.ErrorTypeKey.String(errorType(err)))
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// errorType is the low-cardinality error.type of a circuit failure: the
// refusal code or the reset reason in snake_case, "stalled" for a relay
// bound, else "_OTHER".
func errorType(err error) string {
	var refused *circuit.RefusedError
	var reset *circuit.ResetError
	var sreset *links.StreamResetError
	switch {
	case errors.As(err, &refused):
		return codeLabel(refused.Code)
	case errors.Is(err, circuit.ErrStalled):
		return "stalled"
	case errors.Is(err, circuit.ErrShuttingDown):
		return "shutting_down"
	case errors.As(err, &reset):
		return reasonType(reset.Code.Reason())
	case errors.As(err, &sreset):
		return reasonType(circuit.CloseCode(sreset.Code).Reason())
	case errors.Is(err, links.ErrLinkLost):
		return "link_lost"
	case errors.Is(err, circuit.ErrAuth):
		return "auth"
	}
	return "_OTHER"
}

// forwardedReset reports whether err is a reset that came from further
// along the path (another hop produced it), as opposed to one this relay
// produced: only the producer marks its span as failed.
func forwardedReset(err error) bool {
	var sreset *links.StreamResetError
	return errors.As(err, &sreset) && sreset.Remote && !errors.Is(err, circuit.ErrStalled)
}

func snake(s string) string { return strings.ReplaceAll(s, " ", "_") }

// reasonType is the error.type of a reset with close reason r: the
// reason's name, or "_OTHER" for a code circuit does not name (CloseName
// calls it "code N"), which the peer that reset chose: one value per code
// would let it add up to 256 values of its choosing.
func reasonType(r uint64) string {
	name := circuit.CloseName(r)
	if name == "" || strings.HasPrefix(name, "code ") {
		return "_OTHER"
	}
	return snake(name)
}

// resultLabel is the circuitmesh.result of a failed dial: the refusal code,
// or "error" when the circuit failed otherwise.
func resultLabel(err error) string {
	var refused *circuit.RefusedError
	if errors.As(err, &refused) {
		return codeLabel(refused.Code)
	}
	return "error"
}

// isNoopTracing reports whether p is OpenTelemetry's no-op tracer
// provider, whose spans never record.
func isNoopTracing(p trace.TracerProvider) bool {
	_, ok := p.(noop.TracerProvider)
	return ok
}
