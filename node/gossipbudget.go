package node

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/circuitmesh/circuitmesh/internal/bucket"
)

// Budget of failed signature checks of gossip metadata, per source prefix
// (links.SourcePrefix: an IPv4 address, an IPv6 /64), as routing has per
// neighbour. A signature that verifies costs nothing; one that fails
// costs its source a token. A source without a token left has its alive
// messages dropped, by the gossip guard before memberlist queues them and
// by NotifyAlive (for those queued already, and the alive states of its
// push-pulls) before any check.
const (
	sigFailRate  = 20  // failed checks a second a source earns
	sigFailBurst = 100 // failed checks a source may run at once
	// sigFailSources bounds the sources with a budget in use. A new
	// source beyond it takes the place of one whose budget is whole
	// again, or else of any.
	sigFailSources = 4096
	// sigFailSeen bounds the alive messages remembered with their
	// source, per generation (two are kept): memberlist queues at most
	// HandoffQueueDepth (1,024) messages between the guard and
	// NotifyAlive.
	sigFailSeen = 4096
	// sigFailPushes bounds the push-pull streams whose signed alive
	// states are remembered with their source: those inbound are
	// forgotten when memberlist closes the stream, once it merged them
	// (at most gossipStreams are open); memberlist merges the states of
	// a push-pull it started after it closed the stream, so the
	// outbound ones are forgotten only as newer ones come (it starts
	// them one at a time): the last sigFailPushesOut are kept.
	sigFailPushesOut = 4
	sigFailPushes    = gossipStreams + sigFailPushesOut
	// sigFailKeySources bounds the sources remembered for one alive
	// message sent in datagrams: the first that sent it and the newest
	// others. Copies from other sources cannot push the first out: a
	// member's new message arrives from it, or from members relaying it,
	// before a stranger can copy it.
	sigFailKeySources = 4
)

// gmAlive is memberlist's alive message type (net.go, aliveMsg).
const gmAlive = 4

// sigBudget accounts failed signature checks to the source prefixes that
// sent the alive messages. The guard records which sources sent each
// signed alive message (by a digest of its member name and metadata,
// what NotifyAlive is given), so that a failure is charged to them. Any
// source may send a copy of another's message: one is dropped unchecked
// only when every source recorded for it spent its budget.
type sigBudget struct {
	seed maphash.Seed

	mu       sync.Mutex
	buckets  map[netip.Prefix]*bucket.Bucket
	cur, old map[uint64][]netip.Prefix // alive messages seen: their sources, at most sigFailKeySources
	pushes   []*pushSeen               // oldest first; at most sigFailPushes
}

// pushSeen is the source of one push-pull stream and the signed alive
// states it carried (by digest, as sigBudget.key): at most the states its
// header announced, which the guard bounds to maxMembers.
type pushSeen struct {
	src     netip.Prefix
	inbound bool
	keys    map[uint64]struct{}
}

func newSigBudget() *sigBudget {
	return &sigBudget{seed: maphash.MakeSeed(), buckets: map[netip.Prefix]*bucket.Bucket{}, cur: map[uint64][]netip.Prefix{}}
}

func (b *sigBudget) key(name string, meta []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(b.seed)
	h.WriteString(name)
	h.WriteByte(0)
	h.Write(meta)
	return h.Sum64()
}

// spentLocked reports whether src has no failed check left at now.
func (b *sigBudget) spentLocked(src netip.Prefix, now time.Time) bool {
	bk := b.buckets[src]
	return bk != nil && bk.Refill(now).Tokens < 1
}

// sawLocked records that src sent the alive message about name with meta.
func (b *sigBudget) sawLocked(name string, meta []byte, src netip.Prefix) {
	if len(b.cur) >= sigFailSeen {
		b.old, b.cur = b.cur, make(map[uint64][]netip.Prefix, sigFailSeen)
	}
	k := b.key(name, meta)
	srcs := b.cur[k]
	for i, s := range srcs {
		if s == src {
			if i == 0 {
				return // the first stays first
			}
			srcs = append(srcs[:i], srcs[i+1:]...)
			break
		}
	}
	if len(srcs) >= sigFailKeySources {
		srcs = append(srcs[:1], srcs[2:]...) // the oldest after the first
	}
	b.cur[k] = append(srcs, src)
}

// sourcesLocked are the sources recorded for the alive message, newest
// first, each once.
func (b *sigBudget) sourcesLocked(name string, meta []byte) []netip.Prefix {
	k := b.key(name, meta)
	var srcs []netip.Prefix
	add := func(src netip.Prefix) {
		for _, s := range srcs {
			if s == src {
				return
			}
		}
		srcs = append(srcs, src)
	}
	for i := len(b.pushes) - 1; i >= 0; i-- {
		if _, ok := b.pushes[i].keys[k]; ok {
			add(b.pushes[i].src)
		}
	}
	for _, m := range []map[uint64][]netip.Prefix{b.cur, b.old} {
		for i := len(m[k]) - 1; i >= 0; i-- {
			add(m[k][i])
		}
	}
	return srcs
}

// pushStarted remembers a push-pull stream from src, whose states are to
// be recorded with pushState; an inbound one until pushEnded.
func (b *sigBudget) pushStarted(src netip.Prefix, inbound bool) *pushSeen {
	ps := &pushSeen{src: src, inbound: inbound, keys: map[uint64]struct{}{}}
	b.mu.Lock()
	defer b.mu.Unlock()
	out, oldestOut := 0, -1
	for i, o := range b.pushes {
		if !o.inbound {
			out++
			if oldestOut < 0 {
				oldestOut = i
			}
		}
	}
	switch {
	case oldestOut >= 0 && (len(b.pushes) >= sigFailPushes || !inbound && out >= sigFailPushesOut):
		b.pushes = append(b.pushes[:oldestOut], b.pushes[oldestOut+1:]...)
	case len(b.pushes) >= sigFailPushes:
		b.pushes = b.pushes[1:]
	}
	b.pushes = append(b.pushes, ps)
	return ps
}

// pushState records that the push-pull ps carried a state about name
// with meta, if its metadata is signed.
func (b *sigBudget) pushState(ps *pushSeen, name string, meta []byte) {
	if !bytes.Contains(meta, []byte(metaSigField)) {
		return
	}
	k := b.key(name, meta)
	b.mu.Lock()
	ps.keys[k] = struct{}{}
	b.mu.Unlock()
}

// pushEnded forgets the inbound push-pull ps: memberlist merged its
// states before it closed the stream.
func (b *sigBudget) pushEnded(ps *pushSeen) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, o := range b.pushes {
		if o == ps {
			b.pushes = append(b.pushes[:i], b.pushes[i+1:]...)
			return
		}
	}
}

// allow reports whether the alive message about name with meta may cost
// a signature check: false when every source recorded for it has spent
// its budget. src is a source that has not (or, when refused, the newest
// recorded), when known (the guard records the sources of plaintext
// datagrams and push-pull streams; encrypted ones have none).
func (b *sigBudget) allow(name string, meta []byte, now time.Time) (src netip.Prefix, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	srcs := b.sourcesLocked(name, meta)
	if len(srcs) == 0 {
		return netip.Prefix{}, true
	}
	for _, s := range srcs {
		if !b.spentLocked(s, now) {
			return s, true
		}
	}
	return srcs[0], false
}

// failed charges each source of the alive message that has not spent its
// budget with a failed check: each sent a message whose signature fails.
func (b *sigBudget) failed(name string, meta []byte, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, src := range b.sourcesLocked(name, meta) {
		if !b.spentLocked(src, now) {
			b.chargeLocked(src, now)
		}
	}
}

// chargeLocked takes a failed check from src's budget.
func (b *sigBudget) chargeLocked(src netip.Prefix, now time.Time) {
	bk := b.buckets[src]
	if bk == nil {
		if len(b.buckets) >= sigFailSources {
			b.evictLocked(now)
		}
		full := bucket.Full(sigFailRate, sigFailBurst, now)
		bk = &full
		b.buckets[src] = bk
	}
	bk.Refill(now)
	bk.Tokens = max(bk.Tokens-1, 0)
}

// evictLocked drops the sources whose budget is whole again (as good as
// none), or else one source.
func (b *sigBudget) evictLocked(now time.Time) {
	for src, bk := range b.buckets {
		if bk.Refill(now).Tokens >= bk.Burst {
			delete(b.buckets, src)
		}
	}
	for src := range b.buckets {
		if len(b.buckets) < sigFailSources {
			return
		}
		delete(b.buckets, src)
	}
}

// filter takes a plaintext packet (as checkPacket returns it) from src:
// it records the source of each signed alive message, or, when src has
// spent its budget, drops them. It returns the packet to hand on (nil
// when nothing is left) and how many alive messages it dropped.
func (b *sigBudget) filter(p []byte, src netip.Prefix, now time.Time) ([]byte, int) {
	if len(p) == 0 || (p[0] != gmAlive && p[0] != gmCompound) || !bytes.Contains(p, []byte(metaSigField)) {
		return p, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	spent := b.spentLocked(src, now)
	if p[0] == gmAlive {
		if spent {
			return nil, 1
		}
		b.sawAliveLocked(p[1:], src)
		return p, 0
	}
	// A compound that checkCompound passed.
	var keep [][]byte
	dropped := 0
	for _, part := range compoundParts(p) {
		if len(part) > 0 && part[0] == gmAlive {
			if spent {
				dropped++
				continue
			}
			b.sawAliveLocked(part[1:], src)
		}
		keep = append(keep, part)
	}
	switch {
	case dropped == 0:
		return p, 0
	case len(keep) == 0:
		return nil, dropped
	}
	return compound(keep), dropped
}

// compound encodes parts as memberlist's compound message.
func compound(parts [][]byte) []byte {
	out := []byte{gmCompound, byte(len(parts))}
	for _, part := range parts {
		out = binary.BigEndian.AppendUint16(out, uint16(len(part)))
	}
	for _, part := range parts {
		out = append(out, part...)
	}
	return out
}

// compoundParts splits a compound that checkCompound passed into its
// parts (sharing p's bytes).
func compoundParts(p []byte) [][]byte {
	n := int(p[1])
	lens, body := p[2:2+2*n], p[2+2*n:]
	parts := make([][]byte, n)
	for i := range n {
		l := int(binary.BigEndian.Uint16(lens[2*i:]))
		parts[i], body = body[:l], body[l:]
	}
	return parts
}

// sawAliveLocked records the source of an encoded alive message (its
// fields as memberlist's alive), if it decodes and carries a signature.
func (b *sigBudget) sawAliveLocked(msg []byte, src netip.Prefix) {
	if !bytes.Contains(msg, []byte(metaSigField)) {
		return
	}
	var a gossipAlive
	if codec.NewDecoderBytes(msg, &codec.MsgpackHandle{}).Decode(&a) != nil {
		return // memberlist refuses it too
	}
	b.sawLocked(a.Node, a.Meta, src)
}
