package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// twoRelays is a line a–r1–r2–b on real QUIC.
func twoRelays(t *testing.T) *cluster {
	t.Helper()
	c := newCluster(t, true)
	c.build("a-r1", "r1-r2", "r2-b")
	c.waitRoute("a", "b", 3)
	return c
}

// serveHTTP serves h on service of n until the test ends.
func serveHTTP(t *testing.T, n *Node, service string, h http.Handler) {
	t.Helper()
	ln, err := n.Listen(service)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
}

func TestHTTPClientReachesServicesByURL(t *testing.T) {
	c := twoRelays(t)
	a, b := c.node("a"), c.node("b")
	serveHTTP(t, b, "web", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s?%s host=%s from=%s", r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.RemoteAddr)
	}))
	serveHTTP(t, b, "api", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "api")
	}))
	cl := a.HTTPClient()
	for range 3 { // keep-alive circuits are reused
		resp, err := cl.Get("http://b/web/x/y?q=1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "GET /x/y?q=1 host=b from=a/"; !strings.HasPrefix(string(body), want) {
			t.Fatalf("body %q, want prefix %q", body, want)
		}
	}
	resp, err := cl.Get("http://b/api/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "api" {
		t.Fatalf("second service on the same peer answered %q", body)
	}
	for _, bad := range []string{"http://b/", "https://b/web/", "http://b:80/web/"} {
		if _, err := cl.Get(bad); !errors.Is(err, ErrHTTPURL) {
			t.Errorf("GET %s: %v, want ErrHTTPURL", bad, err)
		}
	}
	if _, err := cl.Get("http://b/nosuch/"); err == nil || !strings.Contains(err.Error(), "no such service") {
		t.Errorf("GET to a missing service: %v, want the typed refusal", err)
	}
}

func TestHTTPClientCancelEndsTheServersRequest(t *testing.T) {
	c := twoRelays(t)
	a, b := c.node("a"), c.node("b")
	ended := make(chan struct{})
	serveHTTP(t, b, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // the client went away
		close(ended)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://b/slow/", nil)
	resp, err := a.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the server's request context never ended after the client cancelled")
	}
}

// testService implements the gRPC interop TestService's unary and
// bidirectional streaming calls.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
	cancelled chan error // the server side of a cancelled stream ends here
}

func (s *testService) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		return nil, status.Error(codes.FailedPrecondition, "no deadline reached the server")
	}
	return &testgrpc.SimpleResponse{Hostname: time.Until(dl).Round(time.Second).String(), Payload: req.GetPayload()}, nil
}

func (s *testService) FullDuplexCall(stream testgrpc.TestService_FullDuplexCallServer) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			s.cancelled <- stream.Context().Err()
			return err
		}
		for _, p := range req.GetResponseParameters() {
			if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
				return err
			}
		}
	}
}

func grpcPair(t *testing.T) (testgrpc.TestServiceClient, *testService) {
	t.Helper()
	c := twoRelays(t)
	a, b := c.node("a"), c.node("b")
	svc := &testService{cancelled: make(chan error, 1)}
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, svc)
	ln, err := b.Listen("grpc")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	cc, err := grpc.NewClient("passthrough:///b",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return a.Dial(ctx, "b", "grpc")
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		srv.Stop()
		<-done
	})
	return testgrpc.NewTestServiceClient(cc), svc
}

func TestGRPCThroughTwoRelays(t *testing.T) {
	client, svc := grpcPair(t)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("ping")}})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.GetPayload().GetBody()) != "ping" || res.GetHostname() == "" {
		t.Fatalf("unary answer %v", res)
	}

	// A bidirectional stream: each request asks for two responses.
	stream, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 20
	for i := range rounds {
		req := &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: int32(i + 1)}, {Size: 4096}}}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		for _, want := range []int{i + 1, 4096} {
			got, err := stream.Recv()
			if err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
			if len(got.GetPayload().GetBody()) != want {
				t.Fatalf("round %d: %d bytes, want %d", i, len(got.GetPayload().GetBody()), want)
			}
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("after CloseSend: %v, want EOF", err)
	}

	// Cancelling the client's context ends the RPC on the server.
	sctx, scancel := context.WithCancel(context.Background())
	stream, err = client.FullDuplexCall(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&testgrpc.StreamingOutputCallRequest{}); err != nil {
		t.Fatal(err)
	}
	scancel()
	select {
	case err := <-svc.cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("server stream ended with %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server never saw the cancellation")
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("client Recv after cancel: %v, want Canceled", err)
	}
}

func TestGRPCDeadlineReachesTheServerAndExpires(t *testing.T) {
	client, _ := grpcPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	left, err := time.ParseDuration(res.GetHostname())
	if err != nil || left <= 0 || left > 30*time.Second {
		t.Fatalf("the server saw %q left of a 30s deadline (%v)", res.GetHostname(), err)
	}
	// A deadline that expires while the stream waits ends it with
	// DeadlineExceeded on the client.
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	stream, err := client.FullDuplexCall(short)
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("stream past its deadline: %v, want DeadlineExceeded", err)
	}
}
