package node

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/ratelog"
	"github.com/prometheus/client_golang/prometheus"
)

// fuzzGuard is a plaintext gossip guard without a transport: what the
// fuzz tests below hand it comes from a stranger.
func fuzzGuard(t testing.TB) *gossipGuard {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	return &gossipGuard{
		maxNodes: maxMembers,
		metric:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refused"}, []string{"kind", "reason"}),
		log:      ratelog.New(log, time.Minute, 64),
		budget:   newSigBudget(),
		slots:    streamSlots{byPrefix: make(map[netip.Prefix]int)},
		members:  memberAddrs{byName: make(map[string]memberAddr), at: make(map[netip.AddrPort]*addrNames)},
	}
}

// gossipSeeds are datagrams of each kind the guard decodes: plain,
// checksummed, compressed, compound, ping and ping request.
func gossipSeeds(t testing.TB) [][]byte {
	ping := []byte{gmPing, 0x80}
	alive := append([]byte{gmAlive}, []byte(`{"Meta":"`+metaSigField+`"}`)...)
	body := append([]byte{gmCompound, 2, 0, byte(len(ping)), 0, byte(len(alive))}, append(ping, alive...)...)
	return [][]byte{
		ping,
		alive,
		body,
		withCrc(body),
		compressStr(t, body),
		{gmCompress, 0x82, 0xa4, 'A', 'l', 'g', 'o', gmLZW, 0xa3, 'B', 'u', 'f', 0xc6, 0xff, 0xff, 0xff, 0xff},
		{gmIndirectPing, 0x81},
	}
}

// FuzzGossipPacket hands the guard a stranger's datagram: it never
// panics, and what it passes on is within the bounds memberlist relies
// on it for (size, compound parts, at most one ping).
func FuzzGossipPacket(f *testing.F) {
	for _, s := range gossipSeeds(f) {
		f.Add(s)
	}
	g := fuzzGuard(f)
	from := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 7946}
	member := func(a netip.AddrPort) bool { return a.Port()%2 == 0 }
	f.Fuzz(func(t *testing.T, p []byte) {
		in := bytes.Clone(p)
		out, reason, err := g.checkPacket(p)
		if reason != "" {
			if err == nil || out != nil {
				t.Fatalf("refused (%s) with err %v and %d bytes passed on", reason, err, len(out))
			}
			return
		}
		if len(out) > gossipPacketMax {
			t.Fatalf("passed on %d bytes", len(out))
		}
		if len(out) > 0 && out[0] == gmCompound {
			if r, err := checkCompound(out[1:]); r != "" {
				t.Fatalf("passed on a compound it refuses: %s: %v", r, err)
			}
		}
		out, _, _ = g.budget.filter(out, netip.MustParsePrefix("192.0.2.1/32"), time.Now())
		if acked, _ := ackToSender(out, from, member); len(acked) > len(out) {
			t.Fatalf("answers rewritten from %d to %d bytes", len(out), len(acked))
		}
		if !bytes.Equal(p, in) {
			t.Fatal("the guard wrote into the datagram it was handed")
		}
	})
}

// byteConn is a net.Conn that reads b and discards writes.
type byteConn struct {
	net.Conn
	r *bytes.Reader
}

func (c *byteConn) Read(p []byte) (int, error)      { return c.r.Read(p) }
func (c *byteConn) Write(p []byte) (int, error)     { return len(p), nil }
func (c *byteConn) SetReadDeadline(time.Time) error { return nil }
func (c *byteConn) SetDeadline(time.Time) error     { return nil }
func (c *byteConn) Close() error                    { return nil }
func (c *byteConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 7946}
}

// FuzzGossipStream hands the guard a stranger's gossip stream: it never
// panics, refuses with a reason and an error, serves memberlist at most
// gossipStreamMax bytes of a plaintext stream (decompressed or not) plus
// the type byte it read, and no byte an uncompressed stream did not hold.
func FuzzGossipStream(f *testing.F) {
	for _, s := range gossipSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{gmPushPull, 0x83, 0xa5, 'N', 'o', 'd', 'e', 's', 0x01, 0xac, 'U', 's', 'e', 'r', 'S', 't', 'a', 't', 'e', 'L', 'e', 'n', 0x00, 0xa4, 'J', 'o', 'i', 'n', 0xc2, 0x81, 0xa4, 'N', 'a', 'm', 'e', 0xa1, 'x'})
	f.Add([]byte{gmUser, 0, 0, 0, 1})
	// The answers to a stream this node opened: an ack and an error.
	f.Add([]byte{gmAck, 0x82, 0xa5, 'S', 'e', 'q', 'N', 'o', 0x01, 0xa7, 'P', 'a', 'y', 'l', 'o', 'a', 'd', 0xc4, 0x00})
	f.Add([]byte{gmErr, 0x81, 0xa5, 'E', 'r', 'r', 'o', 'r', 0xa1, 'x'})
	g := fuzzGuard(f)
	f.Fuzz(func(t *testing.T, s []byte) {
		for _, inbound := range []bool{false, true} {
			c := g.guard(&byteConn{r: bytes.NewReader(s)}, inbound)
			if inbound {
				// As passStream admits it: the bytes memberlist is to
				// hold are charged to a stream holding a slot.
				if _, _, reason := g.slots.admit(c, time.Now()); reason != "" {
					t.Fatalf("no slot for a stream: %s", reason)
				}
				defer g.slots.release(c)
			}
			r, reason, err := c.inspect()
			if reason != "" {
				if err == nil {
					t.Fatalf("refused (%s) without an error", reason)
				}
				continue
			}
			n, _ := io.Copy(io.Discard, r)
			if n > gossipStreamMax+1 {
				t.Fatalf("served %d bytes", n)
			}
			if len(s) > 0 && s[0] != gmCompress && n > int64(len(s)) {
				t.Fatalf("served %d bytes of a %d-byte stream", n, len(s))
			}
		}
	})
}

// FuzzParseMeta: a member's metadata, as gossip carries it from anyone,
// parses or fails with errBadMeta; a signature it finds is one of
// Ed25519's size, cut from a body it covers that is valid JSON.
func FuzzParseMeta(f *testing.F) {
	f.Add([]byte(`{"v":1,"addr":"192.0.2.1:4242"}`))
	f.Add([]byte(`{"v":1,"addr":"192.0.2.1:4242",` + metaSigField + `"` + string(bytes.Repeat([]byte("A"), 86)) + `"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := parseMeta(raw)
		if err != nil {
			if !errors.Is(err, errBadMeta) {
				t.Fatalf("error %v does not unwrap to errBadMeta", err)
			}
			return
		}
		if p.sig != nil && len(p.sig) != 64 {
			t.Fatalf("signature of %d bytes", len(p.sig))
		}
		if p.sig == nil && !bytes.Equal(p.body, raw) {
			t.Fatal("unsigned metadata whose body is not all of it")
		}
	})
}
