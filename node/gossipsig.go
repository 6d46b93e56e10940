package node

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Signed gossip metadata (docs/PROTOCOL.md, section 5). A node signs its
// metadata with the Ed25519 key of its mesh certificate:
//
//	meta   = body without its closing "}" ,"sig":"<base64, no padding>"}
//	signed = "circuitmesh gossip meta v1" 0x00 mesh 0x00 name 0x00 body
//
// body is the JSON object of memberMeta with "ts", the signer's clock in
// milliseconds, raised by one when the clock has not moved. A receiver
// reads the member's fields from body only, so what it uses is what was
// signed, and checks the signature against the key of the certificate
// that a verified routing attestation of the member carried (the only
// place a node learns other nodes' certificates without asking: an
// attestation reaches every node routing reaches, hop by hop).
const (
	metaSigContext = "circuitmesh gossip meta v1\x00"
	metaSigField   = `,"sig":"`
)

// metaSigLen is what a signature adds to a metadata body.
var metaSigLen = len(metaSigField) + base64.RawStdEncoding.EncodedLen(ed25519.SignatureSize) + len(`"}`)

// Errors wrapping errBadMeta for metadata that fails its signature.
var (
	// errMetaSignature: the signature does not verify under the key of
	// the member's certificate.
	errMetaSignature = fmt.Errorf("%w: bad signature", errBadMeta)
	// errMetaStale: signed metadata older than (or as old as, and not
	// the same as) the verified metadata held for the member: a replay.
	errMetaStale = fmt.Errorf("%w: older than the verified metadata held", errBadMeta)
	// errMetaBudget: signed metadata from a source that spent its
	// budget of failed signature checks (gossipbudget.go), not checked.
	errMetaBudget = fmt.Errorf("%w: its source failed too many signature checks", errBadMeta)
	// errMetaNodeBudget: signed metadata that arrived while the node
	// spent its budget of failed signature checks, from all sources
	// together (gossipbudget.go), not checked.
	errMetaNodeBudget = fmt.Errorf("%w: the node failed too many signature checks", errBadMeta)
	// errMetaUnverified: metadata that cannot be verified (unsigned, or
	// the member's certificate is not known) for a member whose verified
	// metadata is held.
	errMetaUnverified = fmt.Errorf("%w: unverified metadata for a member whose signed metadata is known", errBadMeta)
	// errMetaGossipAddr: metadata naming another gossip address than the
	// alive message that carries it (a member's signed metadata replayed
	// at another address), or one that does not parse.
	errMetaGossipAddr = fmt.Errorf("%w: names another gossip address", errBadMeta)
)

// gossipAddrPort is ip:port as the metadata's Gossip field and the guard
// (memberAddrs) key gossip addresses: IPv4 unmapped, no zone. The zero
// AddrPort when ip is not 4 or 16 bytes.
func gossipAddrPort(ip net.IP, port int) netip.AddrPort {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || port < 0 || port > 65535 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port))
}

// gossipAddr is the gossip address m names, IPv4 unmapped; ok is false
// when it names none (metadata of a version before the field) or one
// that does not parse.
func (m *memberMeta) gossipAddr() (a netip.AddrPort, ok bool) {
	if m.Gossip == "" {
		return a, false
	}
	a, err := netip.ParseAddrPort(m.Gossip)
	if err != nil || a.Addr().Zone() != "" {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()), true
}

// checkGossip refuses metadata that names a gossip address other than
// ip:port, the one the alive message carrying it gives the member
// (whatever its form, IPv4 or IPv4-mapped IPv6). Metadata naming none
// passes: nodes of versions before the field (such a member's address
// does not count as verified: verifiedAt).
func (m *memberMeta) checkGossip(ip net.IP, port uint16) error {
	if m.Gossip == "" {
		return nil
	}
	a, ok := m.gossipAddr()
	if !ok {
		return fmt.Errorf("gossip address %q: %w", m.Gossip, errMetaGossipAddr)
	}
	if at := gossipAddrPort(ip, int(port)); a != at {
		return fmt.Errorf("%s, sent at %s: %w", a, at, errMetaGossipAddr)
	}
	return nil
}

// metaSigned is the message a metadata signature covers.
func metaSigned(mesh, name string, body []byte) []byte {
	b := make([]byte, 0, len(metaSigContext)+len(mesh)+len(name)+2+len(body))
	b = append(b, metaSigContext...)
	b = append(b, mesh...)
	b = append(b, 0)
	b = append(b, name...)
	b = append(b, 0)
	return append(b, body...)
}

// signMeta appends the signature of body (a JSON object) by key.
func signMeta(key ed25519.PrivateKey, mesh, name string, body []byte) []byte {
	sig := ed25519.Sign(key, metaSigned(mesh, name, body))
	out := make([]byte, 0, len(body)+metaSigLen)
	out = append(out, body[:len(body)-1]...)
	out = append(out, metaSigField...)
	out = base64.RawStdEncoding.AppendEncode(out, sig)
	return append(out, `"}`...)
}

// splitMeta returns the signed body of raw and its signature, or raw
// itself and nil when raw carries no signature in the form signMeta
// writes.
func splitMeta(raw []byte) (body, sig []byte) {
	i := bytes.LastIndex(raw, []byte(metaSigField))
	if i < 1 || !bytes.HasSuffix(raw, []byte(`"}`)) || len(raw)-i != metaSigLen {
		return raw, nil
	}
	sig, err := base64.RawStdEncoding.DecodeString(string(raw[i+len(metaSigField) : len(raw)-2]))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return raw, nil
	}
	body = append(append(make([]byte, 0, i+1), raw[:i]...), '}')
	return body, sig
}

// parsedMeta is a member's metadata as NotifyAlive and record read it.
type parsedMeta struct {
	memberMeta
	sig []byte // nil when unsigned
	// body is what sig covers (the whole metadata when unsigned).
	body []byte
}

// parseMeta reads raw metadata: its fields come from the signed body.
func parseMeta(raw []byte) (parsedMeta, error) {
	var p parsedMeta
	p.body, p.sig = splitMeta(raw)
	if err := json.Unmarshal(p.body, &p.memberMeta); err != nil {
		return p, fmt.Errorf("%w: %v", errBadMeta, err)
	}
	return p, nil
}

// verifiedMeta is the newest metadata of a member whose signature this
// node verified.
type verifiedMeta struct {
	raw []byte
	ts  uint64
	ch  *sharedChain // the certificate it verified under
	// gossip is the gossip address it names (signed), the zero AddrPort
	// when none (a node of a version before the field).
	gossip netip.AddrPort
}

// memberKey returns the key the member's metadata is checked with, if
// its certificate is valid now: that of the certificate the newest
// verified routing attestation of name carried, or else that of the
// certificate its held verified metadata verified under (the routing
// certificate records are bounded and may have forgotten it, and an
// identical attestation is not checked again to refill them).
func (d *discovery) memberKey(name string, now time.Time) (*sharedChain, bool) {
	c := d.n.router.cert
	c.mu.Lock()
	ch, ok := c.certOf[name]
	c.mu.Unlock()
	if !ok {
		d.mu.Lock()
		held := d.verified[name]
		d.mu.Unlock()
		ch, ok = held.ch, held.ch != nil
	}
	if !ok || !ch.validAt(now) {
		return nil, false
	}
	return ch, true
}

// nextMetaTS returns the timestamp of this node's next metadata: its
// clock in milliseconds, at least one more than the last. d.mu is held.
func (d *discovery) nextMetaTSLocked(now time.Time) uint64 {
	ts := max(uint64(now.UnixMilli()), d.metaTS+1)
	d.metaTS = ts
	return ts
}

// checkSigned decides on the signed or unsigned metadata raw (parsed as
// p) of member name: nil when it may be taken. Metadata the node holds
// verified is taken again without a check. Signed metadata whose signer's
// key is known must verify and be newer than what is held; it is then
// held. Metadata that cannot be verified is refused while verified
// metadata of the member is held, and otherwise taken as a claim (as
// from a node that does not sign, or before the member's certificate is
// known). verified reports whether raw is now the member's verified
// metadata. With budget, a signature that fails is charged to the source
// that sent raw, and raw from a source that spent its budget is refused
// unchecked (gossipbudget.go). d.mu is not held.
func (d *discovery) checkSigned(name string, raw []byte, p parsedMeta, now time.Time, budget *sigBudget) (verified bool, err error) {
	d.mu.Lock()
	held, ok := d.verified[name]
	d.mu.Unlock()
	if ok && bytes.Equal(held.raw, raw) {
		return true, nil
	}
	var ch *sharedChain
	known := false
	if p.sig != nil {
		ch, known = d.memberKey(name, now)
	}
	if !known {
		if ok {
			return false, fmt.Errorf("member %s: %w", name, errMetaUnverified)
		}
		return false, nil
	}
	// The cache of checks, shared by the nodes of a process, answers
	// first: a verdict cached costs no check, so none is refused.
	signed := metaSigned(d.n.cfg.Mesh, name, p.body)
	k, valid, cached := cachedSig(ch.pub, signed, p.sig)
	if !cached && budget != nil {
		if src, why := budget.check(name, raw, now); why != "" {
			if why == sigRefuseNode {
				d.guard.dropAliveNode(1, src)
				return false, fmt.Errorf("member %s: from %s: %w", name, src, errMetaNodeBudget)
			}
			d.guard.dropAlive(1, src)
			return false, fmt.Errorf("member %s: from %s: %w", name, src, errMetaBudget)
		}
	}
	if !cached {
		valid = verifySigKey(k, ch.pub, signed, p.sig)
	}
	if !valid {
		if budget != nil {
			budget.charge(name, raw, now, !cached)
		}
		return false, fmt.Errorf("member %s: %w", name, errMetaSignature)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if held, ok := d.verified[name]; ok && p.TS <= held.ts {
		return false, fmt.Errorf("member %s: timestamp %d, held %d: %w", name, p.TS, held.ts, errMetaStale)
	}
	if _, ok := d.verified[name]; !ok && len(d.verified) >= maxMembers {
		for k := range d.verified { // forget one that left
			if _, member := d.members[k]; !member {
				delete(d.verified, k)
				break
			}
		}
	}
	if _, ok := d.verified[name]; ok || len(d.verified) < maxMembers {
		// raw is the alive message's own, which memberlist keeps as
		// the member's metadata and never writes to: held, not copied.
		ga, _ := p.gossipAddr()
		d.verified[name] = verifiedMeta{raw: raw, ts: p.TS, ch: ch, gossip: ga}
	}
	delete(d.unverified, name) // verified members are not bounded
	return true, nil
}
