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
	// sigFailNodeRate and sigFailNodeBurst bound the failed checks of the
	// node, whatever their sources: each new source (a spoofed UDP
	// address, another /64 of an IPv6 block) brings a whole budget of its
	// own, so without a bound of the whole, a stranger that rotates
	// sources has the node check as many forgeries as it sends. While
	// the node's budget is contended (below half its burst), a source
	// draws at most 1/sigFailShareDiv of it (and twice that of its
	// burst): it takes sigFailShareDiv sources to keep it spent.
	sigFailNodeRate  = 200
	sigFailNodeBurst = 400
	sigFailShareDiv  = 16
	// sigFailReserveRate and sigFailReserveBurst are a reserve of failed
	// checks, node-wide, for alive messages sent from a member's gossip
	// address (one whose signed metadata this node verified): drawn on
	// only when the node's budget or the source's share is spent, so that
	// a member's new metadata still gets checked during a flood from
	// other sources. A source that spoofs members' addresses spends it
	// within each one's own budget (sigFailRate).
	sigFailReserveRate  = 50
	sigFailReserveBurst = 50
	// sigFailMembers bounds the prefixes remembered as members' gossip
	// addresses, each for sigFailMemberFor after a datagram from one.
	sigFailMembers   = 1024
	sigFailMemberFor = time.Minute
	// sigAdmitRate and sigAdmitBurst bound the signed alive messages from
	// sources that are not members' gossip addresses the guard hands to
	// memberlist, node-wide: the node's budget of failed checks, which
	// they may spend. A member's own first messages and its joins (push-
	// pulls, not bounded here) come well within it.
	sigAdmitRate  = sigFailNodeRate
	sigAdmitBurst = sigFailNodeBurst
)

// Why sigBudget.check refuses a signature check.
const (
	sigRefuseSource = "source" // every source recorded for the message spent its budget or its share
	sigRefuseNode   = "node"   // the node spent its budget and no member's address sent the message
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

	mu      sync.Mutex
	buckets map[netip.Prefix]*srcBudget
	// node bounds the failed checks of all sources together, reserve
	// those beyond it of members' addresses.
	node     bucket.Shared
	reserve  bucket.Bucket
	admit    bucket.Bucket              // signed alive messages from other sources handed on (filter)
	members  map[netip.Prefix]time.Time // prefixes a member's gossip address sent from, until
	cur, old map[uint64][]netip.Prefix  // alive messages seen: their sources, at most sigFailKeySources
	pushes   []*pushSeen                // oldest first; at most sigFailPushes
}

// srcBudget is a source prefix's budget of failed checks and its share
// of the node's.
type srcBudget struct {
	own, share bucket.Bucket
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
	now := time.Now()
	return &sigBudget{seed: maphash.MakeSeed(), buckets: map[netip.Prefix]*srcBudget{}, cur: map[uint64][]netip.Prefix{},
		node:    bucket.NewShared(sigFailNodeRate, sigFailNodeBurst, sigFailShareDiv, now),
		reserve: bucket.Full(sigFailReserveRate, sigFailReserveBurst, now),
		admit:   bucket.Full(sigAdmitRate, sigAdmitBurst, now),
		members: map[netip.Prefix]time.Time{}}
}

func (b *sigBudget) key(name string, meta []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(b.seed)
	h.WriteString(name)
	h.WriteByte(0)
	h.Write(meta)
	return h.Sum64()
}

// spentLocked reports whether src has no failed check left at now: its
// own budget spent, or its share of the node's while that is contended
// (a member's gossip address may still draw on the reserve).
func (b *sigBudget) spentLocked(src netip.Prefix, now time.Time) bool {
	bk := b.buckets[src]
	return bk != nil && (bk.own.Refill(now).Tokens < 1 || b.node.OverShare(&bk.share, now) && !b.memberLocked(src, now))
}

// ownSpentLocked reports whether src spent its own budget at now.
func (b *sigBudget) ownSpentLocked(src netip.Prefix, now time.Time) bool {
	bk := b.buckets[src]
	return bk != nil && bk.own.Refill(now).Tokens < 1
}

// memberSent records that a datagram from src came from a member's
// gossip address (one whose signed metadata this node verified).
func (b *sigBudget) memberSent(src netip.Prefix, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.members[src]; !ok && len(b.members) >= sigFailMembers {
		for p, until := range b.members {
			if now.After(until) || len(b.members) >= sigFailMembers {
				delete(b.members, p)
			}
		}
	}
	b.members[src] = now.Add(sigFailMemberFor)
}

// memberLocked says whether a member's gossip address sent from src
// within sigFailMemberFor before now.
func (b *sigBudget) memberLocked(src netip.Prefix, now time.Time) bool {
	until, ok := b.members[src]
	return ok && !now.After(until)
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
// a signature check (check).
func (b *sigBudget) allow(name string, meta []byte, now time.Time) (src netip.Prefix, ok bool) {
	src, why := b.check(name, meta, now)
	return src, why == ""
}

// check says why the alive message about name with meta may not cost a
// signature check, "" when it may. It may not when every source recorded
// for it has spent its budget, or its share of the node's while that is
// contended (sigRefuseSource); or when the node spent its budget, unless
// a source that has not is a member's gossip address and the reserve has
// a check left (sigRefuseNode). src is a source that has not (or, when
// refused, the newest recorded), when known (the guard records the
// sources of plaintext datagrams and push-pull streams; encrypted ones
// have none, and only the node's budget applies to them).
func (b *sigBudget) check(name string, meta []byte, now time.Time) (src netip.Prefix, why string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	srcs := b.sourcesLocked(name, meta)
	nodeLeft := b.node.Refill(now).Tokens >= 1
	if len(srcs) == 0 {
		if !nodeLeft {
			return netip.Prefix{}, sigRefuseNode
		}
		return netip.Prefix{}, ""
	}
	if nodeLeft {
		for _, s := range srcs {
			if !b.spentLocked(s, now) {
				return s, ""
			}
		}
	}
	if b.reserve.Refill(now).Tokens >= 1 {
		for _, s := range srcs {
			if b.memberLocked(s, now) && !b.ownSpentLocked(s, now) {
				return s, ""
			}
		}
	}
	if !nodeLeft {
		return srcs[0], sigRefuseNode
	}
	return srcs[0], sigRefuseSource
}

// failed charges the node, and each source of the alive message that has
// not spent its budget, with a failed check: each sent a message whose
// signature fails. The node's budget pays for it, or else the reserve.
func (b *sigBudget) failed(name string, meta []byte, now time.Time) {
	b.charge(name, meta, now, true)
}

// charge charges the sources of the alive message with a failed check,
// and the node too if ran (a check ran: a verdict cached costs nothing).
func (b *sigBudget) charge(name string, meta []byte, now time.Time, ran bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ran {
		if b.node.Refill(now).Tokens >= 1 {
			b.node.Take(now)
		} else {
			b.reserve.Refill(now).Tokens = max(b.reserve.Tokens-1, 0)
		}
	}
	for _, src := range b.sourcesLocked(name, meta) {
		if !b.ownSpentLocked(src, now) {
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
		bk = &srcBudget{own: bucket.Full(sigFailRate, sigFailBurst, now), share: b.node.Share(now)}
		b.buckets[src] = bk
	}
	bk.own.Refill(now)
	bk.own.Tokens = max(bk.own.Tokens-1, 0)
	b.node.Charge(&bk.share, now)
}

// evictLocked drops the sources whose budget is whole again (as good as
// none), or else one source.
func (b *sigBudget) evictLocked(now time.Time) {
	for src, bk := range b.buckets {
		if bk.own.Refill(now).Tokens >= bk.own.Burst && bk.share.Refill(now).Tokens >= bk.share.Burst {
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

// nodeSpentLocked reports whether the node spent its budget of failed
// checks at now and src may not draw on the reserve: it is not a
// member's gossip address, its own budget is spent, or the reserve is.
// check refuses such a source's messages (sigRefuseNode) unless their
// verdict is cached.
func (b *sigBudget) nodeSpentLocked(src netip.Prefix, now time.Time) bool {
	if b.node.Refill(now).Tokens >= 1 {
		return false
	}
	return !b.memberLocked(src, now) || b.ownSpentLocked(src, now) || b.reserve.Refill(now).Tokens < 1
}

// filter takes a plaintext packet (as checkPacket returns it) from src:
// it records the source of each signed alive message it hands on, and
// drops them, before memberlist queues them, when src spent its budget
// (why sigRefuseSource), or when the node spent its own and src may not
// draw on the reserve, or src is not a member's gossip address and the
// node handed on sigAdmitBurst such messages at more than sigAdmitRate a
// second (why sigRefuseNode). The node's budget of failed checks is
// spent only as NotifyAlive checks what memberlist queued: a flood from
// sources that each bring a fresh budget (spoofed UDP sources) filled
// memberlist's handler queue (1,024 messages) before the budget showed
// it, and memberlist then dropped the rest uncounted, a member's own
// messages with them. Only a verdict cached for a message dropped here
// is lost (NotifyAlive would have taken it unchecked). It returns the
// packet to hand on (nil when nothing is left) and how many alive
// messages it dropped.
func (b *sigBudget) filter(p []byte, src netip.Prefix, now time.Time) (_ []byte, dropped int, why string) {
	if len(p) == 0 || (p[0] != gmAlive && p[0] != gmCompound) || !bytes.Contains(p, []byte(metaSigField)) {
		return p, 0, ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.spentLocked(src, now):
		why = sigRefuseSource
	case b.nodeSpentLocked(src, now):
		why = sigRefuseNode
	}
	member := b.memberLocked(src, now)
	// pass says whether the signed alive message msg is handed on.
	pass := func(msg []byte) bool {
		if why == "" && !member && bytes.Contains(msg, []byte(metaSigField)) {
			if b.admit.Refill(now).Tokens < 1 {
				why = sigRefuseNode
			} else {
				b.admit.Tokens--
			}
		}
		if why != "" {
			return false
		}
		b.sawAliveLocked(msg, src)
		return true
	}
	if p[0] == gmAlive {
		if !pass(p[1:]) {
			return nil, 1, why
		}
		return p, 0, ""
	}
	// A compound that checkCompound passed.
	var keep [][]byte
	for _, part := range compoundParts(p) {
		if len(part) > 0 && part[0] == gmAlive && !pass(part[1:]) {
			dropped++
			continue
		}
		keep = append(keep, part)
	}
	switch {
	case dropped == 0:
		return p, 0, ""
	case len(keep) == 0:
		return nil, dropped, why
	}
	return compound(keep), dropped, why
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
