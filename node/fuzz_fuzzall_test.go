package node

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/hashicorp/serf/coordinate"
	"github.com/miekg/dns"
	"go.opentelemetry.io/otel/trace"
)

// FuzzTraceContext feeds the trace context of an open header, which the
// previous hop chose, to what a relay and a destination do with it: the
// span context taken from it re-encodes to the same span context, and the
// tracestate passed on is within maxTraceState bytes and made of entries
// of the one received, in their order.
func FuzzTraceContext(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-extra", "a=b")
	f.Add("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "a=b")
	f.Add("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", strings.Repeat("k=v,", 200))
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "big="+strings.Repeat("x", 300)+",small=1,"+strings.Repeat("z=1,", 100))
	f.Fuzz(func(t *testing.T, parent, state string) {
		o := &circuit.Open{TraceParent: parent, TraceState: state}
		ctx := extractTrace(o)
		sc := trace.SpanContextFromContext(ctx)
		var out circuit.Open
		injectTrace(ctx, &out)
		if !sc.IsValid() {
			if out.TraceParent != "" || out.TraceState != "" {
				t.Fatalf("no span context, yet passed on %q %q", out.TraceParent, out.TraceState)
			}
			return
		}
		if len(out.TraceState) > maxTraceState {
			t.Fatalf("tracestate of %d bytes passed on, bound %d", len(out.TraceState), maxTraceState)
		}
		again := trace.SpanContextFromContext(extractTrace(&out))
		if again.TraceID() != sc.TraceID() || again.SpanID() != sc.SpanID() || again.TraceFlags() != sc.TraceFlags() ||
			again.TraceState().String() != sc.TraceState().String() {
			t.Fatalf("span context %v re-encoded as %q %q decodes to %v", sc, out.TraceParent, out.TraceState, again)
		}
		if _, err := o.AppendTo(nil); err == nil {
			// What a relay forwards fits where the header it received did.
			o2 := *o
			o2.TraceParent, o2.TraceState = out.TraceParent, out.TraceState
			if _, err := o2.AppendTo(nil); err != nil {
				t.Fatalf("header with the trace context passed on does not encode: %v", err)
			}
		}
	})
}

// FuzzCapTraceState cuts any tracestate: the result is within
// maxTraceState bytes, unchanged when the input fits, and otherwise a
// subsequence of the input's trimmed entries.
func FuzzCapTraceState(f *testing.F) {
	f.Add("a=1,b=2")
	f.Add(strings.Repeat("k=v,", 200))
	f.Add("big=" + strings.Repeat("x", 300) + ", small=1," + strings.Repeat("z=1 ,", 100))
	f.Add(strings.Repeat(",", 600))
	f.Fuzz(func(t *testing.T, s string) {
		got := capTraceState(s)
		if len(got) > maxTraceState {
			t.Fatalf("capped to %d bytes, bound %d", len(got), maxTraceState)
		}
		if len(s) <= maxTraceState {
			if got != s {
				t.Fatalf("%q fits, yet became %q", s, got)
			}
			return
		}
		in := strings.Split(s, ",")
		i := 0
		for e := range strings.SplitSeq(got, ",") {
			if e == "" && got == "" {
				break
			}
			for i < len(in) && strings.Trim(in[i], " \t") != e {
				i++
			}
			if i == len(in) {
				t.Fatalf("entry %q of %q is not one of the input's, in order", e, got)
			}
			i++
		}
	})
}

// FuzzDecodeHTTPHost decodes the dial address net/http hands the mesh
// transport: an address the transport built decodes to its peer and
// service, and any other fails with ErrHTTPURL.
func FuzzDecodeHTTPHost(f *testing.F) {
	f.Add("b", "web", "70656572612f776562.circuitmesh.invalid:80")
	f.Add("node-1", "api/v1", "[::1]:http")
	f.Add("", "", "[::1]:80")
	f.Add("a", "b", "zz.circuitmesh.invalid:80")
	f.Fuzz(func(t *testing.T, peer, service, addr string) {
		if !strings.Contains(peer, "/") {
			enc := net.JoinHostPort(hex.EncodeToString([]byte(peer+"/"+service))+httpHostSuffix, "80")
			p, s, err := decodeHTTPHost(enc)
			if err != nil || p != peer || s != service {
				t.Fatalf("%q/%q encoded as %q decodes to %q/%q (%v)", peer, service, enc, p, s, err)
			}
		}
		if _, _, err := decodeHTTPHost(addr); err != nil && !errors.Is(err, ErrHTTPURL) {
			t.Fatalf("decodeHTTPHost(%q): %v does not wrap ErrHTTPURL", addr, err)
		}
	})
}

// dnsAnswerConn is a DNS server on a stream connection, in memory: it
// answers every query with msg, given the query's ID and question when msg
// is a DNS message, else as it is with the query's ID.
type dnsAnswerConn struct {
	msg []byte

	mu  sync.Mutex
	in  []byte
	out []byte
}

func (c *dnsAnswerConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.in = append(c.in, p...)
	for len(c.in) >= 2 && len(c.in) >= 2+int(binary.BigEndian.Uint16(c.in)) {
		n := int(binary.BigEndian.Uint16(c.in))
		q := new(dns.Msg)
		if err := q.Unpack(c.in[2 : 2+n]); err != nil {
			return 0, err
		}
		c.in = c.in[2+n:]
		ans := append([]byte(nil), c.msg...)
		m := new(dns.Msg)
		if m.Unpack(c.msg) == nil {
			m.Id, m.Response, m.Question = q.Id, true, q.Question
			if b, err := m.Pack(); err == nil {
				ans = b
			}
		} else if len(ans) >= 2 {
			binary.BigEndian.PutUint16(ans, q.Id)
		}
		c.out = binary.BigEndian.AppendUint16(c.out, uint16(len(ans)))
		c.out = append(c.out, ans...)
	}
	return len(p), nil
}

func (c *dnsAnswerConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.out) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

func (c *dnsAnswerConn) Close() error                     { return nil }
func (c *dnsAnswerConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *dnsAnswerConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *dnsAnswerConn) SetDeadline(time.Time) error      { return nil }
func (c *dnsAnswerConn) SetReadDeadline(time.Time) error  { return nil }
func (c *dnsAnswerConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzResolveJoin resolves Join entries against a DNS server that answers
// every query with the fuzzer's message: at most maxJoinAddrs addresses
// come out, each a HOST:PORT with a port number, and every error wraps
// ErrBadJoin.
func FuzzResolveJoin(f *testing.F) {
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			f.Fatal(err)
		}
		return r
	}
	pack := func(rcode int, rrs ...dns.RR) []byte {
		m := new(dns.Msg)
		m.Response, m.Rcode, m.Answer = true, rcode, rrs
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add("dns+srv:_gossip._tcp.mesh.test.", pack(dns.RcodeSuccess,
		rr("_gossip._tcp.mesh.test. 1 IN SRV 0 0 7946 a.mesh.test."),
		rr("_gossip._tcp.mesh.test. 1 IN SRV 0 0 0 b.mesh.test.")))
	f.Add("dns:seed.mesh.test.:7000", pack(dns.RcodeSuccess,
		rr("seed.mesh.test. 1 IN A 192.0.2.1"), rr("seed.mesh.test. 1 IN A 192.0.2.2")))
	f.Add("dns:seed.mesh.test.", pack(dns.RcodeSuccess, rr("seed.mesh.test. 1 IN AAAA 2001:db8::1")))
	f.Add("dns:seed.mesh.test.:gossip", pack(dns.RcodeSuccess, rr("seed.mesh.test. 1 IN A 192.0.2.1")))
	f.Add("dns+srv:x.test.", pack(dns.RcodeNameError))
	f.Add("dns+srv:x.test.", []byte{0, 0, 0x81, 0x80, 0, 1, 0, 1})
	f.Add("192.0.2.9:7946", []byte(nil))
	f.Fuzz(func(t *testing.T, join string, answer []byte) {
		if len(join) > 300 {
			return
		}
		var dials atomic.Int32 // A and AAAA are asked at once
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			if dials.Add(1) > 64 {
				return nil, errors.New("too many queries")
			}
			return &dnsAnswerConn{msg: answer}, nil
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := resolveJoin(ctx, r, strings.Split(join, " "), "7946")
		if err != nil && !errors.Is(err, ErrBadJoin) {
			t.Fatalf("resolveJoin(%q): %v does not wrap ErrBadJoin", join, err)
		}
		if len(out) > maxJoinAddrs {
			t.Fatalf("%d addresses, bound %d", len(out), maxJoinAddrs)
		}
		for _, a := range out {
			if strings.HasPrefix(a, "dns:") || strings.HasPrefix(a, "dns+srv:") {
				t.Fatalf("join entry %q passed on unresolved", a)
			}
			if !strings.Contains(join, a) {
				h, p, err := net.SplitHostPort(a)
				if err != nil || net.ParseIP(h) == nil {
					t.Fatalf("resolved address %q: host is not an IP (%v)", a, err)
				}
				if _, err := strconv.ParseUint(p, 10, 16); err != nil {
					t.Fatalf("resolved address %q: port: %v", a, err)
				}
			}
		}
	})
}

// FuzzMetaCoord reads the coordinate a member's gossip metadata carries:
// one taken is within checkCoordinate's bounds, its distances to a fresh
// coordinate and to itself are finite, and its wire form reads back.
func FuzzMetaCoord(f *testing.F) {
	c := coordinate.NewCoordinate(coordConfig)
	c.Vec[0], c.Height, c.Error = 0.012, 0.0001, 0.5
	for _, v := range [][]float64{coordWire(c), coordWire(coordinate.NewCoordinate(coordConfig))} {
		b, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`[1e308,1e308,0,0,0,0,0,0,0,0,0]`))
	f.Add([]byte(`[0,0,0,0,0,0,0,0,1.5,0,-1]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c := metaCoord(json.RawMessage(raw))
		if c == nil {
			return
		}
		if err := checkCoordinate(c); err != nil {
			t.Fatalf("took coordinate %v: %v", c, err)
		}
		for _, d := range []time.Duration{coordinate.NewCoordinate(coordConfig).DistanceTo(c), c.DistanceTo(c)} {
			if d < 0 || math.IsNaN(float64(d)) {
				t.Fatalf("coordinate %v: distance %v", c, d)
			}
		}
		b, err := json.Marshal(coordWire(c))
		if err != nil {
			t.Fatal(err)
		}
		if metaCoord(b) == nil {
			t.Fatalf("coordinate %v taken from %s: its wire form %s is refused", c, raw, b)
		}
	})
}
