package seal

import (
	"container/list"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit/seal/internal/noise"
)

// Resumption: after a one-message (IK) handshake, the destination issues
// the source a session ticket inside its encrypted, authenticated reply
// (as a TLS 1.3 NewSessionTicket): a random identifier and a random 32-byte
// pre-shared key, with a lifetime. Later circuits from that source to that
// destination open with a Noise psk0 handshake keyed by it (patternResume):
// no DH and no identity to check, the same first flight with early data,
// and the same replay register.

// patternResume is Noise NNpsk0 without its ee token: -> psk, e / <- e.
// In a psk handshake each e token is mixed into the key (MixKey), so the
// two random 32-byte values make every circuit's keys unique while the psk
// keeps them secret and authenticates both ends, as in TLS 1.3's psk_ke
// resumption. Without a DH the e values are random nonces (nonceDH), not
// keys. Forward secrecy is per session: the psk comes from a handshake with
// ephemeral DH and is forgotten when the session ends (see SessionLifetime).
var patternResume = noise.HandshakePattern{
	Name:     "circuitmesh-resume",
	Messages: [][]noise.MessagePattern{{noise.MessagePatternE}, {noise.MessagePatternE}},
}

// nonceDH supplies patternResume's e values: 32 random bytes, never used
// in a DH.
type nonceDH struct{}

func (nonceDH) GenerateKeypair(rng io.Reader) (noise.DHKey, error) {
	var b [32]byte
	if _, err := io.ReadFull(rng, b[:]); err != nil {
		return noise.DHKey{}, fmt.Errorf("seal: resumption nonce: %w", err)
	}
	return noise.DHKey{Public: b[:]}, nil
}

func (nonceDH) DH(_, _ []byte) ([]byte, error) {
	return nil, fmt.Errorf("seal: no DH in a resumed handshake")
}
func (nonceDH) DHLen() int     { return 32 }
func (nonceDH) DHName() string { return "none" }

// resumeSuite is patternResume's: nonces for e, AES-256-GCM and SHA-256.
var resumeSuite = noise.NewCipherSuite(nonceDH{}, noise.CipherAESGCM, noise.HashSHA256)

// Resumption defaults.
const (
	// SessionLifetime is how long a destination honours a ticket it issued
	// (capped by the source's certificate and key record).
	SessionLifetime = 2 * time.Minute
	// SessionMaxOpens is how many circuits a ticket opens at most.
	SessionMaxOpens = 1 << 16
	// sessionsPerSource bounds the tickets a destination keeps per source
	// (concurrent one-message opens each get one).
	sessionsPerSource = 4
)

// TicketLen is the encoded size of a ticket in an IK reply's payload:
// version u8 | id [16] | psk [32] | lifetime u32 (milliseconds).
const TicketLen = 1 + 16 + 32 + 4

const ticketVersion = 1

// ticket is what a source keeps to resume circuits to one destination.
type ticket struct {
	id     [16]byte
	psk    [32]byte
	expiry time.Time  // the source stops using it then
	peer   *KeyRecord // the destination's record it was issued under
	opens  int
}

// resumable is what a destination keeps for one ticket it issued.
type resumable struct {
	id      [16]byte
	psk     [32]byte
	source  string
	certKey [32]byte // identity (certificate and record) the source proved
	peer    peerIdentity
	expiry  time.Time
	opens   int
}

func appendTicket(b []byte, id [16]byte, psk [32]byte, life time.Duration) []byte {
	b = append(b, ticketVersion)
	b = append(b, id[:]...)
	b = append(b, psk[:]...)
	return binary.BigEndian.AppendUint32(b, uint32(life/time.Millisecond))
}

// parseTicket decodes an IK reply's payload: empty (no ticket) or one
// ticket; anything else is an error.
func parseTicket(p []byte) (id [16]byte, psk [32]byte, life time.Duration, ok bool, err error) {
	if len(p) == 0 {
		return id, psk, 0, false, nil
	}
	if len(p) != TicketLen || p[0] != ticketVersion {
		return id, psk, 0, false, fmt.Errorf("%w: malformed session ticket (%d bytes)", ErrAuth, len(p))
	}
	copy(id[:], p[1:17])
	copy(psk[:], p[17:49])
	life = time.Duration(binary.BigEndian.Uint32(p[49:])) * time.Millisecond
	return id, psk, life, life > 0, nil
}

// resumePrologue binds the ticket's identifier into the handshake.
func resumePrologue(prologue []byte, id [16]byte) []byte {
	b := append(make([]byte, 0, len(prologue)+len("resume\x00")+len(id)), prologue...)
	return append(append(b, "resume\x00"...), id[:]...)
}

func (k *Keys) resumeHandshake(initiator bool, prologue []byte, t [16]byte, psk []byte) (*noise.HandshakeState, error) {
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: resumeSuite,
		Pattern:     patternResume, Initiator: initiator, Random: rand.Reader,
		Prologue:     resumePrologue(prologue, t),
		PresharedKey: psk, PresharedKeyPlacement: 0,
	})
	if err != nil {
		return nil, fmt.Errorf("seal: new resumed handshake: %w", err)
	}
	return hs, nil
}

// tickets is a source's bounded LRU of tickets, one per destination.
type tickets struct {
	mu  sync.Mutex
	max int
	lru *list.List // of *ticketEntry, most recent first
	m   map[string]*list.Element
}

type ticketEntry struct {
	dest string
	t    *ticket
}

func newTickets(max int) *tickets {
	return &tickets{max: max, lru: list.New(), m: make(map[string]*list.Element)}
}

// take returns dest's ticket if still usable at now, counting one open.
func (ts *tickets) take(dest string, now time.Time) *ticket {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	e, ok := ts.m[dest]
	if !ok {
		return nil
	}
	t := e.Value.(*ticketEntry).t
	if !now.Before(t.expiry) || t.opens >= SessionMaxOpens || !t.peer.Valid(now) {
		ts.lru.Remove(e)
		delete(ts.m, dest)
		return nil
	}
	t.opens++
	ts.lru.MoveToFront(e)
	return t
}

func (ts *tickets) put(dest string, t *ticket) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if e, ok := ts.m[dest]; ok {
		e.Value.(*ticketEntry).t = t
		ts.lru.MoveToFront(e)
		return
	}
	if ts.lru.Len() >= ts.max {
		old := ts.lru.Back()
		ts.lru.Remove(old)
		delete(ts.m, old.Value.(*ticketEntry).dest)
	}
	ts.m[dest] = ts.lru.PushFront(&ticketEntry{dest: dest, t: t})
}

// drop forgets dest's ticket if it is t (nil: whichever it is).
func (ts *tickets) drop(dest string, t *ticket) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if e, ok := ts.m[dest]; ok && (t == nil || e.Value.(*ticketEntry).t == t) {
		ts.lru.Remove(e)
		delete(ts.m, dest)
	}
}

// sessions is a destination's bounded table of the tickets it issued, at
// most sessionsPerSource per source, all of them for the identity the
// source proved last. A full table makes room by dropping the oldest
// ticket of a source that holds the most, the new ticket's own source
// when no other holds more, and the least recently used ticket when
// every source holds one and the new one's source none: sources opening
// again and again replace their own tickets, not those of sources that
// hold fewer.
type sessions struct {
	mu       sync.Mutex
	max      int
	lru      *list.List // of *resumable, most recent first
	byID     map[[16]byte]*list.Element
	bySource map[string][]*list.Element // oldest first
	// holding[n] is the set of sources holding n tickets (n ≥ 1).
	holding [sessionsPerSource + 1]map[string]struct{}
}

func newSessions(max int) *sessions {
	s := &sessions{max: max, lru: list.New(), byID: make(map[[16]byte]*list.Element), bySource: make(map[string][]*list.Element)}
	for i := range s.holding {
		s.holding[i] = make(map[string]struct{})
	}
	return s
}

// setSource records that source holds the tickets l.
func (s *sessions) setSource(source string, l []*list.Element) {
	delete(s.holding[len(s.bySource[source])], source)
	if len(l) == 0 {
		delete(s.bySource, source)
		return
	}
	s.bySource[source] = l
	s.holding[len(l)][source] = struct{}{}
}

func (s *sessions) removeLocked(e *list.Element) {
	r := e.Value.(*resumable)
	s.lru.Remove(e)
	delete(s.byID, r.id)
	l := s.bySource[r.source]
	for i, x := range l {
		if x == e {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	s.setSource(r.source, l)
}

// victimLocked is the ticket that makes room in a full table for a new
// one of source.
func (s *sessions) victimLocked(source string) *list.Element {
	n := len(s.bySource[source])
	for most := sessionsPerSource; most > max(n, 1); most-- {
		for v := range s.holding[most] {
			return s.bySource[v][0]
		}
	}
	if n > 0 {
		return s.bySource[source][0]
	}
	return s.lru.Back()
}

// add stores r, dropping the source's tickets for another identity, its
// oldest beyond sessionsPerSource and, beyond max, the ticket
// victimLocked names.
func (s *sessions) add(r *resumable) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range append([]*list.Element(nil), s.bySource[r.source]...) {
		if e.Value.(*resumable).certKey != r.certKey {
			s.removeLocked(e)
		}
	}
	if l := s.bySource[r.source]; len(l) >= sessionsPerSource {
		s.removeLocked(l[0])
	}
	if s.lru.Len() >= s.max {
		s.removeLocked(s.victimLocked(r.source))
	}
	e := s.lru.PushFront(r)
	s.byID[r.id] = e
	s.setSource(r.source, append(s.bySource[r.source], e))
}

// lookup returns the ticket id names if it is still honoured at now.
func (s *sessions) lookup(id [16]byte, now time.Time) (*resumable, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byID[id]
	if !ok {
		return nil, false
	}
	r := e.Value.(*resumable)
	if !now.Before(r.expiry) || r.opens >= SessionMaxOpens {
		s.removeLocked(e)
		return nil, false
	}
	s.lru.MoveToFront(e)
	return r, true
}

// opened counts one circuit opened with r.
func (s *sessions) opened(r *resumable) {
	s.mu.Lock()
	r.opens++
	s.mu.Unlock()
}

// What a destination states in its reply about record sizes: one byte,
// the payload of an XX or resumed reply after what it carried before (its
// identity in XX, nothing when resumed), where sources that predate it
// ignore it. An IK reply's payload is a session ticket or nothing, which
// such sources parse strictly: there the statement is in the ticket's id
// (ticketID).
const (
	// stateReadsLarge: the destination reads records of up to
	// MaxLargeData bytes.
	stateReadsLarge = 1
	// stateSawLarge: the open header it received stated that the source
	// reads them.
	stateSawLarge = 2
	// stateEarlyDropped: the destination took the handshake but not its
	// early data (Responder.DropEarly), which the source sends again. Only
	// to a source whose open header said it does (circuit.FlagResendsEarly).
	stateEarlyDropped = 4
	// stateTookAbandoned: the destination took one of the first messages
	// a full handshake's first message names as abandoned
	// (Keys.InitiateAfter): the refusal that made the source open again
	// was not the destination's. Only in an XX reply, only to a source
	// that named one.
	stateTookAbandoned = 8
)

// appendStatement appends statement st, none when st is 0. With b nil it
// allocates nothing: the payload is read-only.
func appendStatement(b []byte, st byte) []byte {
	switch {
	case st == 0:
		return b
	case b == nil && int(st) < len(statements):
		return statements[st : st+1 : st+1]
	}
	return append(b, st)
}

// statements holds each statement byte, for payloads of one.
var statements = [...]byte{0, 1, 2, 3}

// statementOf is the statement a reply's payload p (after what came
// before it) carries: its first byte, 0 when p is empty. Further bytes
// are ignored.
func statementOf(p []byte) byte {
	if len(p) == 0 {
		return 0
	}
	return p[0]
}

// ticketID is the id of a ticket with key psk from a destination that
// states st: the first 16 bytes of SHA-256("circuitmesh ticket id\0" ||
// psk || st). It is as unpredictable as a random id to whoever does not
// know psk, so sources that predate statements take it for one.
func ticketID(psk [32]byte, st byte) (id [16]byte) {
	const label = "circuitmesh ticket id\x00"
	var b [len(label) + len(psk) + 1]byte
	n := copy(b[:], label)
	n += copy(b[n:], psk[:])
	b[n] = st
	sum := sha256.Sum256(b[:])
	copy(id[:], sum[:])
	return id
}

// ticketStatement is the statement a ticket's id carries: 0 for a random
// id (a destination that predates statements, or chance: 2^-127).
func ticketStatement(id [16]byte, psk [32]byte) byte {
	for _, st := range [...]byte{stateReadsLarge, stateReadsLarge | stateSawLarge,
		stateEarlyDropped, stateReadsLarge | stateEarlyDropped, stateReadsLarge | stateSawLarge | stateEarlyDropped} {
		if ticketID(psk, st) == id {
			return st
		}
	}
	return 0
}

// ticketExpiry is when a ticket issued at now to the source r
// authenticated would expire: at the end of the session's life, or of
// the source's certificate or key record if sooner.
func (k *Keys) ticketExpiry(r *Responder, now time.Time) time.Time {
	expiry := now.Add(k.life)
	if e := r.peer.certExpiry; e.Before(expiry) {
		expiry = e
	}
	if e := r.peer.rec.Expiry; e.Before(expiry) {
		expiry = e
	}
	return expiry
}

// canIssue reports whether a reply at now to the source r authenticated
// carries a ticket (issue), and so a statement.
func (k *Keys) canIssue(r *Responder, now time.Time) bool {
	return k.ticketExpiry(r, now).After(now)
}

// issue makes a ticket for the source that r authenticated in a
// one-message handshake and appends it to the reply payload b. With a
// statement st (not 0), the ticket's id carries it (ticketID).
func (k *Keys) issue(b []byte, r *Responder, st byte, now time.Time) ([]byte, error) {
	expiry := k.ticketExpiry(r, now)
	if !expiry.After(now) {
		return b, nil
	}
	s := &resumable{source: r.source, certKey: r.peer.certKey, expiry: expiry,
		peer: peerIdentity{rec: r.peer.rec, groups: r.peer.groups, certKey: r.peer.certKey, certExpiry: r.peer.certExpiry}}
	if _, err := rand.Read(s.psk[:]); err != nil {
		return b, fmt.Errorf("seal: session ticket: %w", err)
	}
	if st != 0 {
		s.id = ticketID(s.psk, st)
	} else if _, err := rand.Read(s.id[:]); err != nil {
		return b, fmt.Errorf("seal: session ticket: %w", err)
	}
	k.sessions.add(s)
	return appendTicket(b, s.id, s.psk, expiry.Sub(now)), nil
}

// ForgetSession drops the ticket a source holds for dest, if any: the next
// circuit to dest takes a full handshake and gets a new one.
func (k *Keys) ForgetSession(dest string) { k.tickets.drop(dest, nil) }

// Resumable reports whether the next circuit to dest would be resumed.
func (k *Keys) Resumable(dest string) bool {
	k.tickets.mu.Lock()
	defer k.tickets.mu.Unlock()
	e, ok := k.tickets.m[dest]
	if !ok {
		return false
	}
	t, now := e.Value.(*ticketEntry).t, k.now()
	return now.Before(t.expiry) && t.opens < SessionMaxOpens && t.peer.Valid(now)
}
