package links

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync/atomic"
	"testing"
)

// quicV1InitialSalt is QUIC v1's salt of the Initial secrets (RFC 9001,
// section 5.2).
var quicV1InitialSalt = []byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
	0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a}

// forgedInitialClose is a client's Initial packet of QUIC v1 to dcid
// from scid that carries only a CONNECTION_CLOSE with the crypto error of
// TLS's bad_certificate alert, padded to 1200 bytes. Anyone can write
// it without having received a packet: Initial keys come from the
// destination connection ID, which the client chooses.
func forgedInitialClose(t *testing.T, dcid, scid []byte) []byte {
	t.Helper()
	prk, err := hkdf.Extract(sha256.New, dcid, quicV1InitialSalt)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newShortSealer(tls.TLS_AES_128_GCM_SHA256, expandLabel(sha256.New, prk, "client in", 32))
	if err != nil {
		t.Fatal(err)
	}
	hdr := []byte{0xc3, 0, 0, 0, 1, byte(len(dcid))} // Initial, 4-byte packet number
	hdr = append(hdr, dcid...)
	hdr = append(hdr, byte(len(scid)))
	hdr = append(hdr, scid...)
	hdr = append(hdr, 0) // no token
	const pnLen, tagLen = 4, 16
	payload := make([]byte, 1200-len(hdr)-2-pnLen-tagLen)
	// CONNECTION_CLOSE (transport), error 0x12a, in a CRYPTO frame (0x06),
	// no reason; the rest PADDING.
	copy(payload, []byte{0x1c, 0x41, 0x2a, 0x06, 0x00})
	hdr = binary.BigEndian.AppendUint16(hdr, 0x4000|uint16(pnLen+len(payload)+tagLen)) // Length
	pnOff := len(hdr)
	hdr = append(hdr, 0, 0, 0, 0) // packet number 0
	pkt := s.aead.Seal(bytes.Clone(hdr), s.iv, payload, hdr)
	mask := s.hp(pkt[pnOff+pnLen : pnOff+pnLen+16])
	pkt[0] ^= mask[0] & 0x0f
	for i := range pnLen {
		pkt[pnOff+i] ^= mask[1+i]
	}
	return pkt
}

// TestAttackForgedCertificateRefusalNotReported: a node reports a peer's
// refusal of its certificate in TLS (the bad_certificate alert) as a link
// refusal: a WARN line and QUICConfig.OnRefused, which the node counts in
// circuitmesh_links_refused_total. A sender that never reads (a spoofed
// source, on a real network) needs no answer to write a first packet
// carrying only that alert's close, from any address: before, the node
// reported "the peer at <address> refused this node's certificate" for
// each, under the log's and the metric's budget for genuine refusals. Now
// the alert is reported only from an address whose peer answered a
// handshake packet of the node's (it knew a connection ID only a
// receiver there learns); TestRefusals has a genuine one reported.
func TestAttackForgedCertificateRefusalNotReported(t *testing.T) {
	ca := testCA(t, "m")
	var refused atomic.Int64
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) {
		c.OnRefused = func(net.Addr, error) { refused.Add(1) }
	})
	udp, err := net.ListenPacket("udp", "127.0.0.9:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = udp.Close() })
	const forged = 3
	failed := a.HandshakeStats().Failed
	for range forged {
		dcid, scid := make([]byte, 8), make([]byte, 4)
		_, _ = rand.Read(dcid)
		_, _ = rand.Read(scid)
		if _, err := udp.WriteTo(forgedInitialClose(t, dcid, scid), a.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the node to end the forged connections", patience, func() bool {
		return a.HandshakeStats().Failed >= failed+forged
	})
	if n := refused.Load(); n != 0 {
		t.Fatalf("the node reported %d refusals of its certificate for %d first packets forged by a sender that read nothing", n, forged)
	}
}
