package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links/identity"
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

// FuzzParseAdvertiseAddr checks an address a node is to announce
// (--advertise, --gossip-advertise, the config file): a refusal is an
// *AdvertiseAddrError naming the address as given and matching
// ErrAdvertiseAddr and ErrInvalidConfig; an accepted address reads back
// from its own spelling, and the members take it as a link address
// (checkLinkAddr), so what a node announces is never refused.
func FuzzParseAdvertiseAddr(f *testing.F) {
	for _, s := range []string{"203.0.113.7:4242", "[::ffff:10.0.0.1]:4242", "[2001:db8::1]:4242", "127.0.0.2:1",
		"", "203.0.113.7", "example.com:4242", "0.0.0.0:4242", "[::]:4242", ":4242", "203.0.113.7:0",
		"203.0.113.7:65536", "203.0.113.7:http", "224.0.0.1:4242", "255.255.255.255:4242", "[fe80::1%eth0]:4242",
		"[::ffff:255.255.255.255]:1", "203.0.113.7:0080"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := ParseAdvertiseAddr(s)
		if err != nil {
			var ae *AdvertiseAddrError
			if !errors.As(err, &ae) || ae.Addr != s || !errors.Is(err, ErrAdvertiseAddr) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("ParseAdvertiseAddr(%q): %v is no *AdvertiseAddrError naming it", s, err)
			}
			return
		}
		if again, err := ParseAdvertiseAddr(ap.String()); err != nil || again != ap {
			t.Fatalf("%q accepted as %s, which reads back as %s (%v)", s, ap, again, err)
		}
		if err := checkLinkAddr(ap.String()); err != nil {
			t.Fatalf("%q accepted as %s, which members refuse: %v", s, ap, err)
		}
	})
}

// FuzzCheckJoin checks a gossip join entry (--join, the config file): a
// refusal wraps ErrBadJoin and quotes the entry; a dns: entry it accepts
// has a host and a port resolveJoin takes, and a plain one a port
// memberlist takes, from 1 to 65535, or none.
func FuzzCheckJoin(f *testing.F) {
	for _, s := range []string{"192.0.2.9:7946", "seed.mesh.test", "dns:seed.mesh.test.:7000", "dns:seed.mesh.test.",
		"dns+srv:_gossip._tcp.mesh.test.", "dns+srv:", "dns:", "dns::7000", "dns:seed:gossip", "seed:0", "seed:65536",
		"[2001:db8::1]:7946", "[2001:db8::1]", ":7946", "dns:[::1]:+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, j string) {
		err := CheckJoin(j)
		if err != nil {
			if !errors.Is(err, ErrBadJoin) || !strings.Contains(err.Error(), strconv.Quote(j)) {
				t.Fatalf("CheckJoin(%q): %v does not wrap ErrBadJoin and quote the entry", j, err)
			}
			return
		}
		if strings.HasPrefix(j, "dns+srv:") {
			if strings.TrimPrefix(j, "dns+srv:") == "" {
				t.Fatalf("accepted %q, which names no SRV record", j)
			}
			return
		}
		addr := strings.TrimPrefix(j, "dns:")
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			host, port = addr, "7946" // the local gossip port
		}
		if checkJoinPort(j, host, port) != nil {
			t.Fatalf("accepted %q, whose host %q and port %q resolveJoin refuses", j, host, port)
		}
		if !strings.HasPrefix(j, "dns:") && err == nil {
			if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
				t.Fatalf("accepted %q, whose port %q memberlist does not take", j, port)
			}
		}
	})
}

// FuzzCheckAddrs checks a QUIC listen or static link address and a gossip
// bind address (--listen, --link, --gossip, the config file): a
// refusal quotes the address; an accepted gossip bind address has the
// port startDiscovery reads, an accepted static link address a port other
// than 0, and an accepted address of an IP literal resolves as UDP.
func FuzzCheckAddrs(f *testing.F) {
	for _, s := range []string{"0.0.0.0:4242", ":0", "[::1]:4242", "127.0.0.1:quic", "127.0.0.1:domain", "host:4242",
		"127.0.0.1", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:+1", "[fe80::1%lo]:1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		host, port, splitErr := net.SplitHostPort(addr)
		_, hostErr := netip.ParseAddr(host)
		literal := splitErr == nil && (host == "" || hostErr == nil) // resolves with no DNS query
		for _, listen := range []bool{true, false} {
			err := CheckQUICAddr(addr, listen)
			if err != nil {
				if !strings.Contains(err.Error(), strconv.Quote(addr)) {
					t.Fatalf("CheckQUICAddr(%q, %v): %v does not quote the address", addr, listen, err)
				}
				continue
			}
			if splitErr != nil {
				t.Fatalf("CheckQUICAddr(%q, %v) accepted no HOST:PORT: %v", addr, listen, splitErr)
			}
			p, err := net.LookupPort("udp", port)
			if err != nil || (!listen && p == 0) {
				t.Fatalf("CheckQUICAddr(%q, %v) accepted port %q (%d, %v)", addr, listen, port, p, err)
			}
			if literal {
				if _, err := net.ResolveUDPAddr("udp", addr); err != nil {
					t.Fatalf("CheckQUICAddr(%q, %v) accepted what does not resolve: %v", addr, listen, err)
				}
			}
		}
		if err := CheckGossipAddr(addr); err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(addr)) {
				t.Fatalf("CheckGossipAddr(%q): %v does not quote the address", addr, err)
			}
			return
		}
		if p, err := strconv.Atoi(port); splitErr != nil || err != nil || p < 0 || p > 65535 {
			t.Fatalf("CheckGossipAddr(%q) accepted port %q, which startDiscovery reads as %d (%v %v)", addr, port, p, splitErr, err)
		}
	})
}

// FuzzVerifyAttestation verifies any attestation of a route origin, as a
// neighbour relays it, whole: framing, the certificate it carries (parsed
// and checked against the mesh CA) and the signature. Only the
// attestation the origin made verifies; any other fails with
// errAttestation or one of identity's sentinels.
func FuzzVerifyAttestation(f *testing.F) {
	ca, other := twoCAs(f)
	a, _ := certifierFor(f, ca, "a", slog.New(slog.DiscardHandler))
	b, _ := certifierFor(f, ca, "b", slog.New(slog.DiscardHandler))
	rogue, _ := certifierFor(f, other, "b", slog.New(slog.DiscardHandler))
	good, err := b.Attest("b", 5, 7)
	if err != nil {
		f.Fatal(err)
	}
	forged, err := rogue.Attest("b", 5, 7)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(forged)
	f.Add(append([]byte{attestV1}, good[9:]...))
	f.Add(good[:len(good)-1])
	f.Add([]byte{attestVersion, 0, 0, 0, 0, 0, 0, 0, 5})
	sentinels := []error{errAttestation, identity.ErrUntrusted, identity.ErrExpired, identity.ErrMalformed, identity.ErrInvalidName, identity.ErrWrongMesh}
	f.Fuzz(func(t *testing.T, att []byte) {
		err := a.Verify("b", attestationEpoch(att), 7, att)
		if err == nil {
			if !bytes.Equal(att, good) {
				t.Fatalf("verified an attestation b did not make: %x", att)
			}
			return
		}
		if !slices.ContainsFunc(sentinels, func(s error) bool { return errors.Is(err, s) }) {
			t.Fatalf("attestation %x: %v wraps none of the sentinels", att, err)
		}
	})
}
