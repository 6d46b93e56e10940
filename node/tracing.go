package node

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/circuitmesh/circuitmesh/circuit"
)

const tracerName = "github.com/circuitmesh/circuitmesh/node"

// Span attribute keys, one set for every hop of a circuit.
const (
	attrNode     = attribute.Key("circuitmesh.node")
	attrPeer     = attribute.Key("circuitmesh.peer") // the link neighbour
	attrDest     = attribute.Key("circuitmesh.dest")
	attrSource   = attribute.Key("circuitmesh.source")
	attrService  = attribute.Key("circuitmesh.service")
	attrHop      = attribute.Key("circuitmesh.hop")
	attrResult   = attribute.Key("circuitmesh.result")
	attrBytesUp  = attribute.Key("circuitmesh.bytes_up")   // toward the destination
	attrBytesDn  = attribute.Key("circuitmesh.bytes_down") // toward the source
	attrCloseErr = attribute.Key("circuitmesh.close_reason")
)

var traceContext = propagation.TraceContext{}

// injectTrace writes the span context of ctx into the open header.
func injectTrace(ctx context.Context, o *circuit.Open) {
	c := propagation.MapCarrier{}
	traceContext.Inject(ctx, c)
	o.TraceParent = c["traceparent"]
	o.TraceState = c["tracestate"]
}

// extractTrace returns a context carrying the header's remote span context.
func extractTrace(o *circuit.Open) context.Context {
	if o.TraceParent == "" {
		return context.Background()
	}
	c := propagation.MapCarrier{"traceparent": o.TraceParent}
	if o.TraceState != "" {
		c["tracestate"] = o.TraceState
	}
	return traceContext.Extract(context.Background(), c)
}

func hopAttrs(self string, o *circuit.Open) []attribute.KeyValue {
	return []attribute.KeyValue{
		attrNode.String(self), attrDest.String(o.Dest), attrSource.String(o.Source),
		attrService.String(o.Service), attrHop.Int(int(o.Hop)),
	}
}

// endSpan records the outcome of one hop and ends its span.
func endSpan(span trace.Span, result string, up, down int64, err error) {
	span.SetAttributes(attrResult.String(result), attrBytesUp.Int64(up), attrBytesDn.Int64(down))
	if err != nil {
		span.SetAttributes(attrCloseErr.String(err.Error()))
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
