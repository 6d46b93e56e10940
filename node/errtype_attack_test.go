package node

import (
	"io"
	"testing"
	"time"

	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// TestAttackResetCodeCannotChooseErrorType: m, a member serving "svc",
// resets each circuit it accepts with a close code of its choosing. a's
// dial span took its error.type from the code, one value per code
// ("code_40", "code_77", ...): a peer could add up to 256 values of its
// choosing to an attribute kept low-cardinality (span-metrics pipelines
// group by it). Codes circuit does not name are now "_OTHER".
func TestAttackResetCodeCannotChooseErrorType(t *testing.T) {
	c, rec := tracedCluster(t)
	c.build("a-m")
	c.waitRoute("a", "m", 1)
	m := c.nodes["m"]
	ln, err := m.Listen("svc")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	codes := []uint64{40, 77, 200, 255}
	go func() {
		for i := 0; ; i++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			tc := conn.(*trackedConn)
			tc.Conn.Abort(codes[i%len(codes)])
			tc.finish("reset", nil)
		}
	}()
	seen := map[string]bool{}
	for i, code := range codes {
		id := trace.TraceID{0x71, byte(i + 1)}
		ctx := trace.ContextWithRemoteSpanContext(ctxT(t, 10*time.Second), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: id, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, Remote: true}))
		conn, rerr := c.nodes["a"].DialWith(ctx, "m", "svc", DialOptions{NoResume: true})
		if rerr == nil { // else the reset came before the result: the dial failed
			_, rerr = io.ReadAll(conn)
			conn.Close()
		}
		spans := traceSpans(t, rec, id, 2) // a's dial span (m's accept span is m's own business)
		for _, s := range spans {
			if spanAttr(s, attrNode).AsString() != "a" {
				continue
			}
			et := spanAttr(s, semconv.ErrorTypeKey).AsString()
			seen[et] = true
			t.Logf("m reset with code %d: a's read error %v; a's dial span error.type=%q status=%v", code, rerr, et, s.Status())
		}
	}
	if len(seen) != 1 || !seen["_OTHER"] {
		t.Errorf("a's dial spans got error.type values %v for m's unnamed reset codes, want only _OTHER", seen)
	}
}
