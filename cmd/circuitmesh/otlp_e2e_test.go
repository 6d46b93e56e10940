package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/circuitmesh/circuitmesh/node"
)

// otlpReceiver is an OTLP trace receiver built from the official OTLP
// protobuf and collector service packages: a gRPC TraceService and an
// HTTP/protobuf /v1/traces handler, both storing what they receive.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	grpcAddr, httpAddr string

	mu    sync.Mutex
	spans []receivedSpan
	via   map[string]string // service.instance.id → protocol it exported over
}

// receivedSpan is one span with the resource attributes it came with.
type receivedSpan struct {
	*tracepb.Span
	resource map[string]string
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{via: map[string]string{}}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, r)
	go gs.Serve(gl)
	t.Cleanup(gs.Stop)
	r.grpcAddr = gl.Addr().String()

	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.serveHTTP)
	hs := &http.Server{Handler: mux}
	go hs.Serve(hl)
	t.Cleanup(func() { hs.Close() })
	r.httpAddr = hl.Addr().String()
	return r
}

// Export implements the OTLP gRPC TraceService.
func (r *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.store(req, "grpc")
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// serveHTTP is the OTLP/HTTP binary protobuf endpoint.
func (r *otlpReceiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "want application/x-protobuf, got "+ct, http.StatusUnsupportedMediaType)
		return
	}
	var ex collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &ex); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.store(&ex, "http/protobuf")
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func (r *otlpReceiver) store(req *collectortrace.ExportTraceServiceRequest, via string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		res := stringAttrs(rs.GetResource().GetAttributes())
		r.via[res["service.instance.id"]] = via
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, receivedSpan{Span: s, resource: res})
			}
		}
	}
}

func stringAttrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(v.IntValue)
		}
	}
	return m
}

// trace returns the spans of the first trace that has a span named
// circuitmesh.dial, once it has want spans.
func (r *otlpReceiver) trace(want int) ([]receivedSpan, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	byTrace := map[string][]receivedSpan{}
	for _, s := range r.spans {
		id := hex.EncodeToString(s.GetTraceId())
		byTrace[id] = append(byTrace[id], s)
	}
	for _, s := range r.spans {
		if s.GetName() != "circuitmesh.dial" {
			continue
		}
		if spans := byTrace[hex.EncodeToString(s.GetTraceId())]; len(spans) >= want {
			sort.Slice(spans, func(i, j int) bool {
				return stringAttrs(spans[i].GetAttributes())["circuitmesh.hop"] < stringAttrs(spans[j].GetAttributes())["circuitmesh.hop"]
			})
			return spans, true
		}
	}
	return nil, false
}

// waitTrace waits for a trace of want spans with a dial (see trace).
func (r *otlpReceiver) waitTrace(t *testing.T, want int) []receivedSpan {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if spans, ok := r.trace(want); ok {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("no trace of %d spans with a dial reached the receiver; received:\n%s", want, r.dump())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *otlpReceiver) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, s := range r.spans {
		fmt.Fprintf(&b, "%s trace %x span %x parent %x at %s %v\n", s.GetName(), s.GetTraceId(), s.GetSpanId(),
			s.GetParentSpanId(), s.resource["service.instance.id"], stringAttrs(s.GetAttributes()))
	}
	return b.String()
}

// Four daemons in a line export their spans to a real OTLP receiver, two
// over gRPC and two over HTTP/protobuf; one ping from a to d is one trace
// whose spans form the chain dial (a) → forward (b) → forward (c) →
// accept (d).
func TestE2ETracesReachAnOTLPCollectorAsAChain(t *testing.T) {
	rcv := startOTLPReceiver(t)
	l := newLab(t, "e2e")
	env := func(protocol string, extra ...string) []string {
		endpoint := "http://" + rcv.grpcAddr
		if protocol != "grpc" {
			endpoint = "http://" + rcv.httpAddr
		}
		return append([]string{
			"OTEL_TRACES_EXPORTER=otlp",
			"OTEL_EXPORTER_OTLP_PROTOCOL=" + protocol,
			"OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint,
			"OTEL_BSP_SCHEDULE_DELAY=100", // export within 100 ms
			"OTEL_SERVICE_NAME=",
		}, extra...)
	}
	a := l.startWith(env("grpc"), "a", "")
	b := l.startWith(env("http/protobuf"), "b", "", "--link", a.addr)
	c := l.startWith(env("grpc"), "c", "", "--link", b.addr)
	l.startWith(env("http/protobuf", "OTEL_SERVICE_NAME=edge"), "d", "", "--link", c.addr)
	a.waitRoute(t, "d", func(p node.PeerInfo) bool { return p.Hops == 3 })
	a.cli("ping", "d", "-c", "1")

	spans := rcv.waitTrace(t, 4)
	want := []struct {
		node, name, service, via string
		kind                     tracepb.Span_SpanKind
	}{
		{"a", "circuitmesh.dial", "circuitmesh", "grpc", tracepb.Span_SPAN_KIND_CLIENT},
		{"b", "circuitmesh.forward", "circuitmesh", "http/protobuf", tracepb.Span_SPAN_KIND_INTERNAL},
		{"c", "circuitmesh.forward", "circuitmesh", "grpc", tracepb.Span_SPAN_KIND_INTERNAL},
		{"d", "circuitmesh.accept", "edge", "http/protobuf", tracepb.Span_SPAN_KIND_SERVER},
	}
	if len(spans) != len(want) {
		t.Fatalf("trace has %d spans, want 4:\n%s", len(spans), rcv.dump())
	}
	for i, w := range want {
		s := spans[i]
		attrs := stringAttrs(s.GetAttributes())
		if s.GetName() != w.name || s.GetKind() != w.kind || attrs["circuitmesh.node"] != w.node || attrs["circuitmesh.hop"] != fmt.Sprint(i) {
			t.Fatalf("hop %d: %s kind %v at %s hop %s; want %s kind %v at %s\n%s", i, s.GetName(), s.GetKind(),
				attrs["circuitmesh.node"], attrs["circuitmesh.hop"], w.name, w.kind, w.node, rcv.dump())
		}
		if s.resource["service.instance.id"] != w.node || s.resource["service.name"] != w.service || s.resource["service.version"] == "" {
			t.Fatalf("hop %d: resource %v; want service.instance.id=%s service.name=%s and a service.version", i, s.resource, w.node, w.service)
		}
		if i > 0 && !bytes.Equal(s.GetParentSpanId(), spans[i-1].GetSpanId()) {
			t.Fatalf("the span of %s is not a child of %s's:\n%s", w.node, want[i-1].node, rcv.dump())
		}
		if s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
			t.Fatalf("span of %s failed on a clean ping: %v", w.node, s.GetStatus())
		}
		if attrs["network.transport"] != "quic" || attrs["server.address"] != "d" {
			t.Fatalf("span of %s lacks network.transport or server.address: %v", w.node, attrs)
		}
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for _, w := range want {
		if rcv.via[w.node] != w.via {
			t.Fatalf("%s exported over %q, want %s", w.node, rcv.via[w.node], w.via)
		}
	}
}

// `circuitmesh demo` exports its five nodes' spans when the OTEL_*
// variables ask for it (what `make trace-demo` points at Jaeger): a circuit
// from a to e is one chained trace across four service instances.
func TestDemoExportsChainedTracesOverOTLP(t *testing.T) {
	rcv := startOTLPReceiver(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+rcv.grpcAddr)
	t.Setenv("OTEL_SERVICE_NAME", "")
	// The demo's own 2-minute bound is for an idle machine (see
	// TestDemoRelaysVerifiesAndFailsOver).
	code, out, stderr := cm(t, "demo", "--size", "1", "--timeout", "6m")
	if code != 0 {
		t.Fatalf("demo exited %d: %s\n%s", code, stderr, out)
	}
	spans := rcv.waitTrace(t, 4)
	kinds := []tracepb.Span_SpanKind{tracepb.Span_SPAN_KIND_CLIENT, tracepb.Span_SPAN_KIND_INTERNAL,
		tracepb.Span_SPAN_KIND_INTERNAL, tracepb.Span_SPAN_KIND_SERVER}
	for i, s := range spans {
		if s.GetKind() != kinds[i] || stringAttrs(s.GetAttributes())["circuitmesh.hop"] != fmt.Sprint(i) {
			t.Fatalf("hop %d: %s kind %v\n%s", i, s.GetName(), s.GetKind(), rcv.dump())
		}
		if i > 0 && !bytes.Equal(s.GetParentSpanId(), spans[i-1].GetSpanId()) {
			t.Fatalf("hop %d is not a child of hop %d:\n%s", i, i-1, rcv.dump())
		}
	}
	if first, last := spans[0].resource["service.instance.id"], spans[3].resource["service.instance.id"]; first != "a" || last != "e" {
		t.Fatalf("the trace goes from %s to %s, want a to e:\n%s", first, last, rcv.dump())
	}
}
