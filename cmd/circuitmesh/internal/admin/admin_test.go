package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

// fakeNode answers like a node with fixed tables; its circuits are echo
// servers on loopback TCP.
type fakeNode struct {
	peers    []node.PeerInfo
	services []string
	exposes  map[string]string
}

func (f *fakeNode) Status() node.Status    { return node.Status{Name: "a", Mesh: "m", Links: 1} }
func (f *fakeNode) Peers() []node.PeerInfo { return f.peers }
func (f *fakeNode) Links() []node.LinkInfo {
	return []node.LinkInfo{{Peer: "b", RTT: time.Millisecond}}
}
func (f *fakeNode) Services() []string { return f.services }
func (f *fakeNode) Ping(_ context.Context, peer string) (node.PingResult, error) {
	if peer != "b" {
		return node.PingResult{}, fmt.Errorf("no route to %q", peer)
	}
	return node.PingResult{Open: 2 * time.Millisecond, RTT: time.Millisecond, Path: []string{"a", "b"}}, nil
}

func (f *fakeNode) DialWith(_ context.Context, peer, service string, _ node.DialOptions) (node.Conn, error) {
	if peer != "b" || service != "echo" {
		return nil, fmt.Errorf("dial %s/%s: no such service", peer, service)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	return tcpCircuit{c.(*net.TCPConn)}, nil
}

func (f *fakeNode) ReloadIdentity() error { return errors.New("no identity files") }

type tcpCircuit struct{ *net.TCPConn }

func (tcpCircuit) Path() []string { return []string{"a", "b"} }
func (tcpCircuit) Sealed() bool   { return false }

func (f *fakeNode) Expose(service, target string) (func() error, error) {
	f.exposes[service] = target
	return func() error { delete(f.exposes, service); return nil }, nil
}

func (f *fakeNode) SetLinkCost(peer string, cost uint32) error { return nil }
func (f *fakeNode) Topology(context.Context, node.TopologyOptions) (node.Graph, error) {
	return node.Graph{}, errors.New("no mesh behind the fake node")
}

func (f *fakeNode) Forward(listen, peer, service string) (net.Addr, func() error, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, nil, fmt.Errorf("forward %s to %s/%s: %w", listen, peer, service, err) // as node.Forward says it
	}
	return ln.Addr(), ln.Close, nil
}

func startServer(t *testing.T, n Node) (*Client, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(n, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return NewClient(path), path
}

func newFake() *fakeNode {
	return &fakeNode{
		peers:    []node.PeerInfo{{Name: "b", Reachable: true, NextHop: "b", Cost: 10, Hops: 1}},
		services: []string{"echo"},
		exposes:  map[string]string{},
	}
}

func TestInspectionEndpointsReturnTheNodeTables(t *testing.T) {
	c, path := startServer(t, newFake())
	ctx := context.Background()
	var peers []node.PeerInfo
	if err := c.Get(ctx, PathPeers, nil, &peers); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(peers, newFake().peers) {
		t.Fatalf("peers = %+v", peers)
	}
	var st node.Status
	if err := c.Get(ctx, PathStatus, nil, &st); err != nil || st.Name != "a" {
		t.Fatalf("status = %+v, %v", st, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestExposeAndForwardAreListedAndRemovable(t *testing.T) {
	f := newFake()
	c, _ := startServer(t, f)
	ctx := context.Background()
	if err := c.Post(ctx, PathExpose, Expose{Service: "web", Target: "127.0.0.1:80"}, nil); err != nil {
		t.Fatal(err)
	}
	err := c.Post(ctx, PathExpose, Expose{Service: "web", Target: "127.0.0.1:81"}, nil)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("second expose of the same name: %v, want ErrConflict", err)
	}
	var fw Forward
	if err := c.Post(ctx, PathForward, Forward{Listen: "127.0.0.1:0", Peer: "b", Service: "web"}, &fw); err != nil {
		t.Fatal(err)
	}
	if fw.Listen == "127.0.0.1:0" {
		t.Fatalf("forward answered the requested address, not the bound one: %+v", fw)
	}
	var sv Services
	if err := c.Get(ctx, PathServices, nil, &sv); err != nil {
		t.Fatal(err)
	}
	if len(sv.Exposed) != 1 || sv.Exposed[0].Target != "127.0.0.1:80" || len(sv.Forwards) != 1 || sv.Forwards[0] != fw {
		t.Fatalf("services = %+v", sv)
	}
	if err := c.Delete(ctx, PathExpose, url.Values{"service": {"web"}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.exposes["web"]; ok {
		t.Fatal("unexpose did not stop the expose")
	}
	if err := c.Delete(ctx, PathForward, url.Values{"listen": {fw.Listen}}); err != nil {
		t.Fatalf("unforward by bound address: %v", err)
	}
	if err := c.Delete(ctx, PathExpose, url.Values{"service": {"web"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unexpose of a missing service: %v, want ErrNotFound", err)
	}
	if err := c.Post(ctx, PathForward, Forward{Listen: "127.0.0.1:0"}, nil); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("forward without peer: %v, want ErrBadRequest", err)
	}
}

func TestDialSplicesBothWaysWithHalfClose(t *testing.T) {
	c, _ := startServer(t, newFake())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	circ, err := c.Dial(ctx, "b", "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer circ.Close()
	circ.SetDeadline(time.Now().Add(5 * time.Second))
	msg := []byte("hello over the mesh")
	if _, err := circ.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := circ.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(circ)
	if err != nil || string(got) != string(msg) {
		t.Fatalf("echo = %q, %v; want %q then EOF", got, err, msg)
	}
}

func TestDialErrorsComeBackAsOneLine(t *testing.T) {
	c, _ := startServer(t, newFake())
	_, err := c.Dial(context.Background(), "b", "nope")
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("dial of a missing service: %v, want ErrUnreachable", err)
	}
	if want := "dial b/nope: no such service"; err.Error() != want {
		t.Fatalf("error = %q, want %q", err, want)
	}
	var p Ping
	if err := c.Get(context.Background(), PathPing, url.Values{"peer": {"zz"}}, &p); err == nil {
		t.Fatal("ping of an unknown peer succeeded")
	}
}

func TestClientSaysWhenTheDaemonIsNotRunning(t *testing.T) {
	dir := t.TempDir()
	missing := NewClient(filepath.Join(dir, "admin.sock"))
	err := missing.Get(context.Background(), PathStatus, nil, nil)
	if !errors.Is(err, ErrNotRunning) {
		t.Fatalf("missing socket: %v, want ErrNotRunning", err)
	}
	// A socket file nobody listens on (left by a crash).
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	err = NewClient(stale).Get(context.Background(), PathStatus, nil, nil)
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "left over from a stopped daemon") {
		t.Fatalf("stale socket: %v, want ErrNotRunning saying it is left over", err)
	}
	// A regular file where the socket should be is not called a leftover.
	file := filepath.Join(dir, "not-a-socket")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err = NewClient(file).Get(context.Background(), PathStatus, nil, nil)
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "is not a socket") || strings.Contains(err.Error(), "left over") {
		t.Fatalf("regular file as the admin socket: %v", err)
	}
	// The daemon replaces a stale socket but refuses a live one.
	ln2, err := Listen(stale, nil)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	defer ln2.Close()
	go func() {
		c, err := ln2.Accept()
		if err == nil {
			c.Close()
		}
	}()
	if _, err := Listen(stale, nil); !errors.Is(err, ErrConflict) {
		t.Fatalf("listen over a live socket: %v, want ErrConflict", err)
	}
}

func TestExposeAndForwardArgumentsAreCheckedBeforeAnythingIsPublished(t *testing.T) {
	f := newFake()
	c, _ := startServer(t, f)
	ctx := context.Background()
	for _, e := range []Expose{
		{Service: "bad name", Target: "127.0.0.1:80"},
		{Service: "web,x", Target: "127.0.0.1:80"},
		{Service: "", Target: "127.0.0.1:80"},
		{Service: "web", Target: "300.1.1.1:80"},
		{Service: "web", Target: "127.0.0.1:0"},
		{Service: "web", Target: "127.0.0.1:70000"},
		{Service: "web", Target: "no-such-host.invalid:80"},
		{Service: "web", Target: "127.0.0.1"},
	} {
		err := c.Post(ctx, PathExpose, e, nil)
		if !errors.Is(err, ErrBadRequest) {
			t.Errorf("expose %+v: %v, want a bad request", e, err)
		}
	}
	if len(f.exposes) != 0 {
		t.Fatalf("refused exposes were published: %v", f.exposes)
	}
	for _, fw := range []Forward{
		{Listen: "127.0.0.1:0", Peer: "Bad Peer", Service: "web"},
		{Listen: "127.0.0.1:0", Peer: "d", Service: "bad name"},
		{Listen: "127.0.0.1:99999", Peer: "d", Service: "web"},
		{Listen: "no-such-host.invalid:0", Peer: "d", Service: "web"},
	} {
		if err := c.Post(ctx, PathForward, fw, nil); !errors.Is(err, ErrBadRequest) {
			t.Errorf("forward %+v: %v, want a bad request", fw, err)
		}
	}
	var s Services
	if err := c.Get(ctx, PathServices, nil, &s); err != nil || len(s.Forwards) != 0 {
		t.Fatalf("refused forwards were started: %+v %v", s, err)
	}
}

// TestForwardOnABusyPortSaysSoOnce: the error names the listen address and
// the destination once, without a doubled "forward:" prefix.
func TestForwardOnABusyPortSaysSoOnce(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	c, _ := startServer(t, newFake())
	err = c.Post(context.Background(), PathForward, Forward{Listen: busy.Addr().String(), Peer: "d", Service: "web"}, nil)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("forward on a busy port: %v, want a conflict", err)
	}
	if strings.Count(err.Error(), "forward") > 1 {
		t.Fatalf("error repeats itself: %q", err)
	}
}
