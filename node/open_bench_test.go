package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"runtime/trace"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

// BenchmarkOpenEcho opens a circuit with its first byte as early data,
// reads the byte back from the echo service and closes: one end-to-end
// round trip, over zero and one relay (a–r–b on loopback QUIC, key already
// cached), sealed and resumable (the default: k0, k1), sealed without the
// resumable layer (DialOptions.NoResume: k0noresume, k1noresume) and with
// end-to-end security off (another a–r–b: k0clear, k1clear). The
// baselines: a plain quic-go stream opened to an echo server (direct) and
// through a relay that io.Copies each stream to one on its next hop
// (naive_k1), with the links' QUIC configuration. Each iteration opens one
// of each, in an order that rotates, so that they share the machine's
// load alike; the medians are reported in µs and as ratios:
// go test -run '^$' -bench OpenEcho -benchtime 1000x ./node/
func BenchmarkOpenEcho(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	direct, naive := openEchoBaselines(b, ctx, &wg)
	sealed, clear := openEchoCluster(b, E2EOn), openEchoCluster(b, E2EOff)
	circuit := func(n *Node, peer string, noResume bool) func() error { return openEchoCircuit(ctx, n, peer, noResume) }
	stream := func(c *quic.Conn) func() error { return openEchoStream(ctx, c) }
	kinds := []struct {
		name string
		open func() error
	}{
		{"direct", stream(direct)}, {"naive_k1", stream(naive)},
		{"k0", circuit(sealed, "r", false)}, {"k1", circuit(sealed, "b", false)},
		{"k0noresume", circuit(sealed, "r", true)}, {"k1noresume", circuit(sealed, "b", true)},
		{"k0clear", circuit(clear, "r", false)}, {"k1clear", circuit(clear, "b", false)},
	}
	for _, k := range kinds { // warm: keys cached, sessions resumable
		if err := k.open(); err != nil {
			b.Fatalf("%s: %v", k.name, err)
		}
	}
	samples := make(map[string][]float64, len(kinds))
	b.ResetTimer()
	for i := range b.N {
		for j := range kinds {
			k := kinds[(i+j)%len(kinds)]
			t := time.Now()
			if err := k.open(); err != nil {
				b.Fatalf("%s: %v", k.name, err)
			}
			samples[k.name] = append(samples[k.name], float64(time.Since(t).Microseconds()))
		}
	}
	b.StopTimer()
	med := map[string]float64{}
	for name, v := range samples {
		slices.Sort(v)
		med[name] = v[len(v)/2]
		b.ReportMetric(med[name], name+"-µs")
	}
	b.ReportMetric(med["k1"]/med["direct"], "k1/direct")
	b.ReportMetric(med["k1"]/med["naive_k1"], "k1/naive_k1")
	b.ReportMetric(med["k1noresume"]/med["naive_k1"], "k1noresume/naive_k1")
	b.ReportMetric(med["k1clear"]/med["naive_k1"], "k1clear/naive_k1")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkOpenSerial opens circuits via one relay back to back, each
// with its first byte as early data echoed once, closed before the next:
// sealed and resumable (k1), sealed (k1noresume) and clear (k1clear). It
// reports the median open + echo in µs and the CPU the process (source,
// relay and destination) spent per open, the close included, which a
// busy node pays for each circuit:
// go test -run '^$' -bench OpenSerial -benchtime 1000x ./node/
func BenchmarkOpenSerial(b *testing.B) {
	for _, k := range []struct {
		name     string
		e2e      E2E
		noResume bool
	}{{"k1", E2EOn, false}, {"k1noresume", E2EOn, true}, {"k1clear", E2EOff, false}} {
		b.Run(k.name, func(b *testing.B) {
			n := openEchoCluster(b, k.e2e)
			open := func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				conn, err := n.DialWith(ctx, "b", EchoService, DialOptions{Early: true, NoResume: k.noResume})
				if err == nil {
					err = echoOne(conn)
					conn.Close()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			open() // warm: key cached, session resumable
			lat := make([]float64, 0, b.N)
			b.ResetTimer()
			cpu0 := processCPU()
			for range b.N {
				t := time.Now()
				open()
				lat = append(lat, float64(time.Since(t).Microseconds()))
			}
			cpu := processCPU() - cpu0
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(lat[len(lat)/2], "open-µs")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/open")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// echoOne writes one byte on c and reads it back.
// openEchoCircuit opens an early-data echo circuit from n to peer,
// echoes one byte and closes it.
func openEchoCircuit(ctx context.Context, n *Node, peer string, noResume bool) func() error {
	return func() error {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		conn, err := n.DialWith(dctx, peer, EchoService, DialOptions{Early: true, NoResume: noResume})
		if err != nil {
			return err
		}
		defer conn.Close()
		return echoOne(conn)
	}
}

// openEchoStream opens a stream on c, echoes one byte and closes it.
func openEchoStream(ctx context.Context, c *quic.Conn) func() error {
	return func() error {
		s, err := c.OpenStreamSync(ctx)
		if err != nil {
			return err
		}
		defer s.CancelRead(0)
		defer s.Close()
		return echoOne(s)
	}
}

func echoOne(c io.ReadWriter) error {
	buf := []byte{'x'}
	if _, err := c.Write(buf); err != nil {
		return err
	}
	_, err := io.ReadFull(c, buf)
	return err
}

// echoMsg writes msg on c and checks that the same bytes come back.
func echoMsg(c io.ReadWriter, msg string) error {
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echoed %q, want %q", got, msg)
	}
	return nil
}

// openEchoCluster builds a–r–b with end-to-end security e2e and returns a.
func openEchoCluster(b *testing.B, e2e E2E) *Node {
	return openEchoClusterOn(b, e2e, nil)
}

// openEchoClusterOn is openEchoCluster whose nodes' sockets wrap wraps,
// when set.
func openEchoClusterOn(b *testing.B, e2e E2E, wrap func(name string, pc net.PacketConn) net.PacketConn) *Node {
	c := newCluster(b, true)
	c.tweak = func(cfg *Config) {
		cfg.E2E = e2e
		if wrap != nil {
			udp, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			cfg.PacketConn = wrap(cfg.Name, udp)
		}
	}
	c.build("a-r", "r-b")
	c.waitRoute("a", "b", 2)
	return c.nodes["a"]
}

// BenchmarkOpenEchoPackets counts the UDP datagrams each end sends per
// open+echo+close of BenchmarkOpenEcho's neighbour kinds (direct, k0,
// k0noresume, k0clear), each kind in a batch of its own followed by a
// pause, so that a circuit's last packets count with its own kind (the
// routing's and links' own traffic counts too: a few per second). Each
// open is marked by a log event "open" in an execution trace (-trace):
// go test -run '^$' -bench OpenEchoPackets -benchtime 300x ./node/
func BenchmarkOpenEchoPackets(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	socks := map[string]*countingPacketConn{}
	var mu sync.Mutex
	counted := func(key string) func(string, net.PacketConn) net.PacketConn {
		return func(name string, pc net.PacketConn) net.PacketConn {
			c := &countingPacketConn{PacketConn: pc}
			mu.Lock()
			socks[key+name] = c
			mu.Unlock()
			return c
		}
	}
	sealed := openEchoClusterOn(b, E2EOn, counted("sealed-"))
	clear := openEchoClusterOn(b, E2EOff, counted("clear-"))
	echoEnd := newBenchQUICOn(b, func(pc net.PacketConn) net.PacketConn { return counted("direct-")("dst", pc) })
	echoEnd.serve(ctx, &wg, func(s *quic.Stream) {
		io.Copy(s, s)
		s.Close()
	})
	srcEnd := newBenchQUICOn(b, func(pc net.PacketConn) net.PacketConn { return counted("direct-")("src", pc) })
	direct := srcEnd.dial(b, ctx, echoEnd.addr())
	circuit := func(n *Node, noResume bool) func() error { return openEchoCircuit(ctx, n, "r", noResume) }
	kinds := []struct {
		name, src, dst string
		open           func() error
	}{
		{"direct", "direct-src", "direct-dst", openEchoStream(ctx, direct)},
		{"k0", "sealed-a", "sealed-r", circuit(sealed, false)},
		{"k0noresume", "sealed-a", "sealed-r", circuit(sealed, true)},
		{"k0clear", "clear-a", "clear-r", circuit(clear, false)},
	}
	for _, k := range kinds { // warm: keys cached, sessions resumable
		for range 3 {
			if err := k.open(); err != nil {
				b.Fatalf("%s: %v", k.name, err)
			}
		}
	}
	const settle = 30 * time.Millisecond // a circuit's last packets
	b.ResetTimer()
	for _, k := range kinds {
		time.Sleep(settle)
		src, dst := socks[k.src], socks[k.dst]
		s0, d0 := src.sent.Load(), dst.sent.Load()
		lat := make([]float64, 0, b.N)
		for range b.N {
			trace.Log(ctx, "open", k.name)
			t := time.Now()
			if err := k.open(); err != nil {
				b.Fatalf("%s: %v", k.name, err)
			}
			lat = append(lat, float64(time.Since(t).Microseconds()))
		}
		time.Sleep(settle)
		slices.Sort(lat)
		b.ReportMetric(lat[len(lat)/2], k.name+"-µs")
		b.ReportMetric(float64(src.sent.Load()-s0)/float64(b.N), k.name+"-src-pkts")
		b.ReportMetric(float64(dst.sent.Load()-d0)/float64(b.N), k.name+"-dst-pkts")
	}
	b.ReportMetric(0, "ns/op")
}

// countingPacketConn counts the datagrams sent on a socket.
type countingPacketConn struct {
	net.PacketConn
	sent atomic.Int64
}

func (c *countingPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	c.sent.Add(1)
	return c.PacketConn.WriteTo(p, addr)
}

// openEchoBaselines starts a quic-go echo server and a naive relay in
// front of it, and returns a connection to each.
func openEchoBaselines(b *testing.B, ctx context.Context, wg *sync.WaitGroup) (direct, naive *quic.Conn) {
	echo := newBenchQUIC(b)
	echo.serve(ctx, wg, func(s *quic.Stream) {
		io.Copy(s, s)
		s.Close()
	})
	relay := newBenchQUIC(b)
	next := relay.dial(b, ctx, echo.addr())
	relay.serve(ctx, wg, func(in *quic.Stream) {
		out, err := next.OpenStreamSync(ctx)
		if err != nil {
			in.CancelRead(1)
			in.CancelWrite(1)
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			io.Copy(out, in)
			out.Close()
		}()
		io.Copy(in, out)
		in.Close()
		<-done
	})
	src := newBenchQUIC(b)
	return src.dial(b, ctx, echo.addr()), src.dial(b, ctx, relay.addr())
}

// benchQUIC is a plain quic-go endpoint with the links' QUIC
// configuration and TLS certificates, peers unchecked.
type benchQUIC struct {
	tr   *quic.Transport
	ln   *quic.Listener
	tls  *tls.Config
	conf *quic.Config
}

func newBenchQUIC(b *testing.B) *benchQUIC { return newBenchQUICOn(b, nil) }

// newBenchQUICOn is newBenchQUIC on its socket wrapped by wrap, when set.
func newBenchQUICOn(b *testing.B, wrap func(net.PacketConn) net.PacketConn) *benchQUIC {
	id, err := identity.Insecure("baseline", DefaultMesh)
	if err != nil {
		b.Fatal(err)
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	conf, err := links.QUICConfig{}.QUIC()
	if err != nil {
		b.Fatal(err)
	}
	var pc net.PacketConn = udp
	if wrap != nil {
		pc = wrap(udp)
	}
	e := &benchQUIC{
		tr: &quic.Transport{Conn: pc},
		tls: &tls.Config{
			MinVersion:         tls.VersionTLS13,
			Certificates:       []tls.Certificate{id.TLSCertificate()},
			ClientAuth:         tls.RequireAnyClientCert,
			InsecureSkipVerify: true,
			NextProtos:         []string{"bench"},
			ServerName:         "bench",
		},
		conf: conf,
	}
	if e.ln, err = e.tr.Listen(e.tls, e.conf); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		e.ln.Close()
		e.tr.Close()
		udp.Close()
	})
	return e
}

func (e *benchQUIC) addr() net.Addr { return e.tr.Conn.LocalAddr() }

func (e *benchQUIC) dial(b *testing.B, ctx context.Context, to net.Addr) *quic.Conn {
	c, err := e.tr.Dial(ctx, to, e.tls, e.conf)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.CloseWithError(0, "") })
	return c
}

// serve runs fn in a goroutine of its own for every stream accepted until
// ctx ends.
func (e *benchQUIC) serve(ctx context.Context, wg *sync.WaitGroup, fn func(*quic.Stream)) {
	wg.Go(func() {
		for {
			c, err := e.ln.Accept(ctx)
			if err != nil {
				return
			}
			wg.Go(func() {
				for {
					s, err := c.AcceptStream(ctx)
					if err != nil {
						return
					}
					wg.Go(func() { fn(s) })
				}
			})
		}
	})
}

// BenchmarkEchoRTT echoes one byte back and forth on established
// circuits a–r (k0) and a–r–b (k1): sealed and resumable (the default),
// sealed without the resumable layer (noresume) and with end-to-end
// security off (clear), the kinds taking turns. It reports each kind's
// median round trip in µs and the CPU the process (both ends and the
// relay) spent per echo, which load on the machine changes less than the
// latency:
// go test -run '^$' -bench EchoRTT -benchtime 2000x ./node/
func BenchmarkEchoRTT(b *testing.B) {
	sealed, clear := openEchoCluster(b, E2EOn), openEchoCluster(b, E2EOff)
	type kind struct {
		name string
		conn net.Conn
		lat  []float64
		cpu  time.Duration
	}
	var kinds []*kind
	for _, k := range []struct {
		name, peer string
		n          *Node
		noResume   bool
	}{
		{"k0", "r", sealed, false}, {"k1", "b", sealed, false},
		{"k0noresume", "r", sealed, true}, {"k1noresume", "b", sealed, true},
		{"k0clear", "r", clear, true}, {"k1clear", "b", clear, true},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := k.n.DialWith(ctx, k.peer, EchoService, DialOptions{NoResume: k.noResume})
		cancel()
		if err != nil {
			b.Fatalf("%s: %v", k.name, err)
		}
		defer c.Close()
		for range 10 { // warm
			if err := echoOne(c); err != nil {
				b.Fatalf("%s: %v", k.name, err)
			}
		}
		kinds = append(kinds, &kind{name: k.name, conn: c})
	}
	b.ResetTimer()
	for i := range b.N {
		for j := range kinds {
			k := kinds[(i+j)%len(kinds)]
			cpu0, t := processCPU(), time.Now()
			if err := echoOne(k.conn); err != nil {
				b.Fatalf("%s: %v", k.name, err)
			}
			k.lat = append(k.lat, float64(time.Since(t).Nanoseconds())/1e3)
			k.cpu += processCPU() - cpu0
		}
	}
	b.StopTimer()
	for _, k := range kinds {
		slices.Sort(k.lat)
		b.ReportMetric(k.lat[len(k.lat)/2], k.name+"-µs")
		b.ReportMetric(float64(k.cpu.Nanoseconds())/1e3/float64(b.N), k.name+"-cpu-µs")
	}
	b.ReportMetric(0, "ns/op")
}
