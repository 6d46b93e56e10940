package seal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	upstream "github.com/flynn/noise"

	"github.com/circuitmesh/circuitmesh/circuit/seal/internal/noise"
)

// Handshake modes, the first byte of the first message.
const (
	modeIK     = 1
	modeXX     = 2
	modeResume = 3 // followed by the ticket id, then Noise NNpsk0
)

// MaxMessage bounds one handshake message (the u16 length prefix's range).
const MaxMessage = 65535

// MaxEarly bounds the early data carried by a first (IK) message.
const MaxEarly = 16 << 10

// Prologue is what both ends bind into the handshake from the open header:
// the fields relays must not change and the destination acts on. flags is
// the header's whole flags field (SEALED, RESUMABLE, RESUME, LARGE_RECORDS
// and the reserved bits, which relays forward unchanged): a relay that sets
// or clears one makes an IK or resumed first message fail to decrypt, and
// an XX reply fail at the source, so the destination never reads the
// payload as the flag it changed says.
func Prologue(dest, source, service string, flags uint16) []byte {
	b := []byte("circuitmesh seal v2\x00")
	b = binary.BigEndian.AppendUint16(b, flags)
	for _, s := range [...]string{dest, source, service} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	return b
}

// AppendMessage frames a handshake message: u16 length, then msg.
func AppendMessage(b, msg []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	return append(b, msg...)
}

// writeFramed appends to b the framed handshake message that write
// appends to its argument: written in place after the length, without a
// buffer of its own and a copy. On error b is returned unchanged.
func writeFramed(b, prefix []byte, write func(out []byte) ([]byte, error)) ([]byte, error) {
	start := len(b) + 2
	out, err := write(append(append(b, 0, 0), prefix...))
	if err != nil {
		return b, err
	}
	binary.BigEndian.PutUint16(out[start-2:], uint16(len(out)-start))
	return out, nil
}

// identity payload: u16 cert length | cert DER | u16 record length | record
// | u64 timestamp (Unix ns) | early data.
func (k *Keys) appendIdentity(b []byte, now time.Time, early []byte) []byte {
	b = AppendMessage(b, k.id.Cert.Raw)
	b = AppendMessage(b, k.rec)
	b = binary.BigEndian.AppendUint64(b, uint64(now.UnixNano()))
	return append(b, early...)
}

type peerIdentity struct {
	rec        *KeyRecord
	groups     []string
	certKey    [32]byte  // the verified certificate and record
	certExpiry time.Time // the certificate's NotAfter
	ts         time.Time
	early      []byte
}

// verifyIdentity checks an identity payload: the certificate chains to the
// mesh CA and names want, the record is signed by it and carries the key
// the handshake proved (static). An identity that passes is cached (at
// most keysPerName a name).
func (k *Keys) verifyIdentity(p []byte, want string, static []byte, now time.Time) (peerIdentity, error) {
	field := func() ([]byte, bool) {
		if len(p) < 2 || len(p) < 2+int(binary.BigEndian.Uint16(p)) {
			return nil, false
		}
		n := int(binary.BigEndian.Uint16(p))
		f := p[2 : 2+n]
		p = p[2+n:]
		return f, true
	}
	cert, ok1 := field()
	rb, ok2 := field()
	if !ok1 || !ok2 || len(p) < 8 {
		return peerIdentity{}, fmt.Errorf("%w: truncated identity of %q", ErrAuth, want)
	}
	ck := idKey(cert, rb)
	id, ok := k.seen.lookup(ck, now)
	if !ok {
		k.seen.full.Add(1)
		peer, err := k.id.VerifyPeer([][]byte{cert}, now)
		if err != nil {
			return peerIdentity{}, fmt.Errorf("%w: certificate of %q: %w", ErrAuth, want, err)
		}
		rec, err := UnmarshalKeyRecord(rb)
		if err != nil {
			return peerIdentity{}, fmt.Errorf("%w: key record of %q: %w", ErrAuth, want, err)
		}
		if err := rec.Verify(peer.Cert, peer.Mesh, peer.Node, now); err != nil {
			return peerIdentity{}, err
		}
		id = verifiedID{peer: peer, rec: rec}
	}
	peer, rec := id.peer, id.rec
	if peer.Node != want {
		return peerIdentity{}, fmt.Errorf("%w: expected %q, certificate names %q", ErrAuth, want, peer.Node)
	}
	if !bytes.Equal(rec.Key[:], static) {
		return peerIdentity{}, fmt.Errorf("%w: %q's handshake key is not the one its key record certifies", ErrAuth, want)
	}
	// Cached only once the handshake proved the record's key: a name's
	// share of the caches holds identities its node used, not ones another
	// replays (its old certificates and records, still valid, which it
	// sent to others before).
	if !ok {
		k.seen.store(ck, id)
	}
	k.dh.allow(rec.Node, rec.Key)
	ts := time.Unix(0, int64(binary.BigEndian.Uint64(p)))
	return peerIdentity{rec: rec, groups: peer.Groups, certKey: ck, certExpiry: peer.Cert.NotAfter, ts: ts, early: p[8:]}, nil
}

func (k *Keys) handshake(pattern noise.HandshakePattern, initiator bool, prologue, peer []byte) (*noise.HandshakeState, error) {
	hs, err := noise.NewHandshakeState(noise.Config{
		// A suite per handshake, whose DH keeps this handshake's
		// ephemeral key parsed (handshakeDH).
		CipherSuite: noise.NewCipherSuite(&handshakeDH{staticDH: k.dh}, noise.CipherAESGCM, noise.HashSHA256),
		Pattern:     pattern, Initiator: initiator,
		Prologue: prologue, StaticKeypair: k.static, PeerStatic: peer,
	})
	if err != nil {
		return nil, fmt.Errorf("seal: new handshake: %w", err)
	}
	return hs, nil
}

// recordSuite is the suite of the record layer's CipherStates: the
// handshake's AES-256-GCM (recordGCM; its DH and hash are not used after
// the handshake).
var recordSuite = upstream.NewCipherSuite(upstream.DH25519, recordGCM{}, upstream.HashSHA256)

// errFinished: a handshake whose session was made is not used again (its
// state was released).
var errFinished = errors.New("seal: handshake already finished")

// established is the session of a completed handshake: the two
// CipherStates it split into (keys and nonces), for the record layer.
func established(send, recv *noise.CipherState) *Session {
	return newSession(upstream.UnsafeNewCipherState(recordSuite, send.UnsafeKey(), send.Nonce()),
		upstream.UnsafeNewCipherState(recordSuite, recv.UnsafeKey(), recv.Nonce()))
}

// Initiator is the source's side of one handshake.
type Initiator struct {
	k    *Keys
	hs   *noise.HandshakeState
	mode byte
	dest string
	peer *KeyRecord
	t    *ticket // the session resumed (modeResume)
	// large: the destination stated it reads large records.
	large bool
	// earlyDropped: the destination stated it did not take the early data.
	earlyDropped bool
	// flight: the ephemeral key of the one-message or resumed first
	// message, once written (Flight).
	flight []byte
	// abandoned: the first messages of this open refused before it,
	// which the full handshake's first message names (InitiateAfter).
	abandoned [][]byte
}

// MaxAbandoned bounds the first messages a full handshake's first message
// names as abandoned (Keys.InitiateAfter).
const MaxAbandoned = 4

// Flight identifies the first message once First wrote it: the ephemeral
// key of a one-message or resumed first message, which the destination's
// replay register records when it takes one; nil for a full handshake,
// which the destination takes only with its third message. A source that
// opens again after a Retry names it (Keys.InitiateAfter).
func (i *Initiator) Flight() []byte { return i.flight }

// EarlyDropped reports whether the destination, once Finish succeeded,
// stated that it took the handshake but not the early data of the first
// message (Responder.DropEarly): the caller sends that data again, ahead
// of anything else.
func (i *Initiator) EarlyDropped() bool { return i.earlyDropped }

// StatesLarge reports whether the source states that it reads large
// records: the caller then sets the open header's flag that says so
// (circuit.FlagLargeRecords), and Finish checks that the destination saw
// it. False only for keys made SmallRecordsOnly.
func (i *Initiator) StatesLarge() bool { return i.k.StatesLarge() }

// StatesLarge reports whether handshakes with these keys state that this
// end reads large records (Initiator.StatesLarge), known before one starts.
func (k *Keys) StatesLarge() bool { return !k.small }

// DestLarge reports whether the destination stated in its reply that it
// reads large records, so that this end's records to it may carry up to
// MaxLargeData bytes (once Finish succeeded).
func (i *Initiator) DestLarge() bool { return i.large }

// Initiate starts a handshake toward dest. With a session ticket from dest
// still valid it resumes that session (patternResume); else with peer (dest's
// verified key record, valid now) it is IK, else XX.
func (k *Keys) Initiate(prologue []byte, dest string, peer *KeyRecord) (*Initiator, error) {
	return k.initiate(prologue, dest, peer, true)
}

// InitiateFresh is Initiate without resuming a session: IK with peer, else
// XX. A source retrying after the destination refused a resumed handshake
// uses it, so that its retry does not take another ticket the destination
// may have forgotten too (many concurrent opens replace tickets faster
// than their replies arrive).
func (k *Keys) InitiateFresh(prologue []byte, dest string, peer *KeyRecord) (*Initiator, error) {
	return k.initiate(prologue, dest, peer, false)
}

// ticketFor takes the ticket a handshake to dest resumes, if resume and
// one is valid.
func (k *Keys) ticketFor(dest string, resume bool) *ticket {
	if !resume {
		return nil
	}
	return k.tickets.take(dest, k.now())
}

// InitiateAfter starts a full (XX) handshake toward dest for an open whose
// first messages abandoned (their Flight keys, at most MaxAbandoned, the
// last ones kept) a result header refused with Retry. That header is not
// authenticated: a relay may have forged it after the destination took the
// message, and an open made again would deliver what it carried twice. The
// first message names them, in its payload (in the clear, bound into the
// handshake), and a destination that took one states it in its
// authenticated reply: Finish then fails with ErrForgedRetry. Destinations
// that predate it ignore the payload of a full handshake's first message.
func (k *Keys) InitiateAfter(prologue []byte, dest string, abandoned [][]byte) (*Initiator, error) {
	i, err := k.initiate(prologue, dest, nil, false)
	if err == nil {
		i.abandoned = abandoned[max(0, len(abandoned)-MaxAbandoned):]
	}
	return i, err
}

func (k *Keys) initiate(prologue []byte, dest string, peer *KeyRecord, resume bool) (*Initiator, error) {
	i := &Initiator{k: k, dest: dest, mode: modeXX}
	if t := k.ticketFor(dest, resume); t != nil {
		i.mode, i.t, i.peer = modeResume, t, t.peer
		var err error
		i.hs, err = k.resumeHandshake(true, prologue, t.id, t.psk[:])
		return i, err
	}
	pattern, pk := noise.HandshakeXX, []byte(nil)
	if peer != nil {
		i.mode, i.peer, pattern, pk = modeIK, peer, noise.HandshakeIK, peer.Key[:]
		k.dh.allow(peer.Node, peer.Key)
	}
	var err error
	i.hs, err = k.handshake(pattern, true, prologue, pk)
	return i, err
}

// Full reports whether this is the full (XX) handshake.
func (i *Initiator) Full() bool { return i.mode == modeXX }

// Resumed reports whether this handshake resumes a session (patternResume).
func (i *Initiator) Resumed() bool { return i.mode == modeResume }

// Refused is for a handshake the destination refused with Retry: a
// resumed one drops its session ticket, so that the next circuit takes
// the one-message handshake. It reports whether the handshake was
// resumed; if not, the destination's key record is what it refused.
func (i *Initiator) Refused() bool {
	if i.t != nil {
		i.k.tickets.drop(i.dest, i.t)
	}
	return i.t != nil
}

// First appends the framed first message to b. In IK it carries the
// source's identity and early (at most MaxEarly bytes); XX carries none.
func (i *Initiator) First(b, early []byte, now time.Time) ([]byte, error) {
	if len(early) > MaxEarly || i.mode == modeXX && len(early) > 0 {
		return b, fmt.Errorf("seal: %d bytes of early data not allowed", len(early))
	}
	return i.first(b, early, now)
}

// first is First without the bound on early data.
func (i *Initiator) first(b, early []byte, now time.Time) ([]byte, error) {
	var payload []byte
	prefix := []byte{i.mode}
	switch i.mode {
	case modeIK:
		payload = i.k.appendIdentity(nil, now, early)
	case modeResume:
		payload = append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(early)), uint64(now.UnixNano())), early...)
		prefix = append(prefix, i.t.id[:]...)
	case modeXX:
		for _, f := range i.abandoned {
			payload = append(payload, f...)
		}
	}
	b, err := writeFramed(b, prefix, func(out []byte) ([]byte, error) {
		msg, _, _, err := i.hs.WriteMessage(out, payload)
		return msg, err
	})
	if err != nil {
		return b, fmt.Errorf("seal: first message: %w", err)
	}
	if i.mode != modeXX {
		i.flight = bytes.Clone(i.hs.LocalEphemeral().Public)
	}
	return b, nil
}

// Finish reads the destination's reply (unframed). It returns the session
// and, in XX, appends the framed third message (the source's identity) to
// b, which the caller must send before any record.
func (i *Initiator) Finish(reply, b []byte, now time.Time) (*Session, []byte, error) {
	if i.hs == nil {
		return nil, b, errFinished
	}
	payload, cs1, cs2, err := i.hs.ReadMessage(nil, reply)
	if err != nil {
		return nil, b, fmt.Errorf("%w: reply from %q does not decrypt: %v", ErrAuth, i.dest, err)
	}
	if i.mode != modeXX && cs1 == nil {
		return nil, b, fmt.Errorf("%w: reply from %q did not complete the handshake", ErrAuth, i.dest)
	}
	switch i.mode {
	case modeResume:
		st := statementOf(payload)
		if err := i.checkStatement(st); err != nil {
			return nil, b, err
		}
		return i.established(cs1, cs2, st, b)
	case modeIK:
		id, psk, life, ok, err := parseTicket(payload)
		if err != nil {
			return nil, b, fmt.Errorf("%w (from %q)", err, i.dest)
		}
		st := byte(0)
		if len(payload) > 0 {
			st = ticketStatement(id, psk)
		}
		if err := i.checkStatement(st); err != nil {
			return nil, b, err
		}
		i.earlyDropped = st&stateEarlyDropped != 0
		if ok {
			t := &ticket{id: id, psk: psk, peer: i.peer, expiry: now.Add(life - life/8)}
			if t.peer.Expiry.Before(t.expiry) {
				t.expiry = t.peer.Expiry
			}
			i.k.tickets.put(i.dest, t)
		}
		return i.established(cs1, cs2, st, b)
	}
	i.k.tickets.drop(i.dest, nil) // the destination's key was unknown or changed
	pi, err := i.k.verifyIdentity(payload, i.dest, i.hs.PeerStatic(), now)
	if err != nil {
		return nil, b, err
	}
	i.peer = pi.rec
	st := statementOf(pi.early)
	if err := i.checkStatement(st); err != nil {
		return nil, b, err
	}
	if st&stateTookAbandoned != 0 && len(i.abandoned) > 0 {
		return nil, b, fmt.Errorf("%w (%q states it took a first message of this open that the path answered with retry)", ErrForgedRetry, i.dest)
	}
	b, err = writeFramed(b, nil, func(out []byte) (msg []byte, err error) {
		msg, cs1, cs2, err = i.hs.WriteMessage(out, i.k.appendIdentity(nil, now, nil))
		return msg, err
	})
	if err != nil || cs1 == nil {
		return nil, b, fmt.Errorf("seal: third message: %v", err)
	}
	return i.established(cs1, cs2, st, b)
}

// checkStatement checks the destination's statement st (0: none) against
// this end's: a destination that states what it reads also says whether
// the open header it received carried the flag by which this end stated
// that it reads large records, and a relay that set or cleared that flag
// on the way makes the circuit fail here. Keys made SmallRecordsOnly
// ignore the statement, as nodes before it did.
func (i *Initiator) checkStatement(st byte) error {
	if i.k.small || st&stateReadsLarge == 0 {
		return nil
	}
	if saw := st&stateSawLarge != 0; saw != i.StatesLarge() {
		return fmt.Errorf("%w: the large-records flag of the open header to %q was changed on the way (sent %t, received %t)",
			ErrIntegrity, i.dest, i.StatesLarge(), saw)
	}
	return nil
}

// established is the source's session once the destination stated st
// (checked by checkStatement): records of up to MaxLargeData bytes each
// way that said it reads them.
func (i *Initiator) established(send, recv *noise.CipherState, st byte, b []byte) (*Session, []byte, error) {
	s := established(send, recv)
	i.hs.Release()
	i.hs = nil
	if !i.k.small {
		s.maxRecv = MaxLargeData
		if st&stateReadsLarge != 0 {
			i.large = true
			s.maxSend = MaxLargeData
		}
	}
	return s, b, nil
}

// PeerRecord is the destination's verified key record: the one given to
// Initiate, or the one learned in an XX handshake once Finish succeeded.
func (i *Initiator) PeerRecord() *KeyRecord { return i.peer }

// Responder is the destination's side of one handshake.
type Responder struct {
	k      *Keys
	hs     *noise.HandshakeState
	mode   byte
	source string
	peer   peerIdentity
	sess   *resumable // the session resumed (modeResume)
	// sourceLarge: the open header stated that the source reads large
	// records (SourceLarge).
	sourceLarge bool
	// earlyDropped: the early data was not taken (DropEarly).
	earlyDropped bool
	// eph: the source's ephemeral key (one-message or resumed), which
	// the replay register recorded.
	eph []byte
	// tookAbandoned: a full handshake's first message names a first
	// message this end took (Keys.InitiateAfter).
	tookAbandoned bool
}

// Ephemeral is the ephemeral key of a one-message or resumed first
// message, which Respond recorded in the replay register (nil for a full
// handshake): the caller marks it taken (Strikes.Take) once it accepts
// the circuit.
func (r *Responder) Ephemeral() []byte { return r.eph }

// TookAbandoned reports whether the full handshake's first message named
// a first message the replay register says this end took: a relay refused
// that one with a forged Retry. The reply states it, the source fails
// (ErrForgedRetry), and Finish refuses the third message, so that nothing
// of this open is taken twice.
func (r *Responder) TookAbandoned() bool { return r.tookAbandoned }

// SourceLarge records what the open header says: whether it carries the
// flag by which the source states that it reads large records
// (circuit.FlagLargeRecords). Call it before Reply. The reply tells the
// source what this end saw, so a source that stated it finds out when a
// relay cleared the flag, and this end's records to the source then
// carry up to MaxLargeData bytes. Keys made SmallRecordsOnly ignore it.
func (r *Responder) SourceLarge(flag bool) { r.sourceLarge = flag && !r.k.small }

// statement is what the destination states in its reply: 0 (nothing) for
// keys made SmallRecordsOnly, else that it reads large records and
// whether it saw the source state the same.
func (r *Responder) statement() byte {
	var dropped byte
	if r.earlyDropped {
		dropped = stateEarlyDropped
	}
	if r.tookAbandoned {
		dropped |= stateTookAbandoned
	}
	switch {
	case r.k.small:
		return dropped
	case r.sourceLarge:
		return stateReadsLarge | stateSawLarge | dropped
	}
	return stateReadsLarge | dropped
}

// DropEarly makes a one-message handshake take no early data: Early
// returns nothing and the reply states it, so that the source sends the
// data again once the handshake completed. For a source whose open header
// says it does that (circuit.FlagResendsEarly), whose first message may
// predate this process (Strikes.MayPredate): a replay then delivers
// nothing, and the replayer cannot complete the handshake to send more.
// It reports false, dropping nothing, when the reply could not say so
// (not a one-message handshake, or no session ticket to carry the
// statement): the caller refuses the open with Retry instead.
func (r *Responder) DropEarly(now time.Time) bool {
	if r.mode != modeIK || !r.k.canIssue(r, now) {
		return false
	}
	r.earlyDropped = true
	r.peer.early = nil
	return true
}

// EarlyDropped reports whether DropEarly took effect: the early data was
// not taken and the source is to send it again as its first records.
func (r *Responder) EarlyDropped() bool { return r.earlyDropped }

// Stamp is the time the source stamped its one-message or resumed first
// message with.
func (r *Responder) Stamp() time.Time { return r.peer.ts }

// established is the destination's session: records of up to
// MaxLargeData bytes each way that stated it reads them.
func (r *Responder) established(send, recv *noise.CipherState) *Session {
	s := established(send, recv)
	r.hs.Release()
	r.hs = nil
	if !r.k.small {
		s.maxRecv = MaxLargeData
	}
	if r.sourceLarge {
		s.maxSend = MaxLargeData
	}
	return s
}

// Respond reads the source's first message (unframed). source is the
// open header's source, which the handshake must prove. In IK the source
// is authenticated on return (Early holds its early data) and strikes
// guards against replay; in XX it is after Finish. Errors wrap ErrAuth,
// or ErrRetry when the source should retry with the full handshake.
func (k *Keys) Respond(prologue, msg []byte, source string, strikes *Strikes, now time.Time) (*Responder, error) {
	if len(msg) < 1 || msg[0] != modeIK && msg[0] != modeXX && msg[0] != modeResume {
		return nil, fmt.Errorf("%w: unknown handshake mode", ErrAuth)
	}
	if msg[0] == modeResume {
		return k.respondResumed(prologue, msg, source, strikes, now)
	}
	r := &Responder{k: k, mode: msg[0], source: source}
	pattern := noise.HandshakeXX
	if r.mode == modeIK {
		pattern = noise.HandshakeIK
		// A replayed message is refused before its DH, on its ephemeral
		// key (in the clear); Check below records it.
		if len(msg) > 32 && strikes.Seen(msg[1:33]) {
			return nil, fmt.Errorf("%w: %w", ErrRetry, ErrReplay)
		}
	}
	var err error
	if r.hs, err = k.handshake(pattern, false, prologue, nil); err != nil {
		return nil, err
	}
	payload, _, _, err := r.hs.ReadMessage(nil, msg[1:])
	if err != nil {
		if r.mode == modeIK {
			// Most likely a stale copy of our key (or a changed header).
			return nil, fmt.Errorf("%w: first message from %q does not decrypt: %v", ErrRetry, source, err)
		}
		return nil, fmt.Errorf("%w: first message from %q: %v", ErrAuth, source, err)
	}
	if r.mode == modeXX {
		if len(payload)%32 != 0 || len(payload) > MaxAbandoned*32 {
			return nil, fmt.Errorf("%w: first message from %q names %d bytes of abandoned messages", ErrAuth, source, len(payload))
		}
		// Recorded now, not once the third message proved the source: a
		// relay that kept a named flight would send it on in between.
		var names [][]byte
		for ; len(payload) > 0; payload = payload[32:] {
			names = append(names, payload[:32])
		}
		if r.tookAbandoned, err = strikes.Abandon(names, source, now); err != nil {
			return nil, err
		}
		return r, nil
	}
	if r.peer, err = k.verifyIdentity(payload, source, r.hs.PeerStatic(), now); err != nil {
		return nil, err
	}
	if err := checkEarly(r.peer.early, source); err != nil {
		return nil, err
	}
	if err := strikes.Check(r.hs.PeerEphemeral(), source, r.peer.ts, now); err != nil {
		return nil, err
	}
	r.eph = bytes.Clone(r.hs.PeerEphemeral())
	return r, nil
}

// checkEarly refuses early data beyond MaxEarly, which no source sends
// (First refuses it): a destination took up to what an open's first
// flight holds (about 64 KiB) into the service's queue.
func checkEarly(early []byte, source string) error {
	if len(early) > MaxEarly {
		return fmt.Errorf("%w: %d bytes of early data from %q, more than %d", ErrAuth, len(early), source, MaxEarly)
	}
	return nil
}

// FullFirst reports whether msg (unframed) is the first message of a full
// (XX) handshake, which costs the destination three X25519 operations
// and the source none: read before Respond, to budget them.
func FullFirst(msg []byte) bool { return len(msg) > 0 && msg[0] == modeXX }

// OneMessageFirst reports whether msg is the first message of a
// one-message (IK) handshake, which costs the destination a
// Diffie-Hellman operation before it can fail.
func OneMessageFirst(msg []byte) bool { return len(msg) > 0 && msg[0] == modeIK }

// Full reports whether this is the full (XX) handshake.
func (r *Responder) Full() bool { return r.mode == modeXX }

// Resumed reports whether the source resumed a session.
func (r *Responder) Resumed() bool { return r.mode == modeResume }

// respondResumed reads a resumed first message: mode | ticket id |
// patternResume message 1 (random e, then timestamp and early data encrypted under
// the ticket's key). Only the holder of the key the destination issued to
// source in an authenticated handshake makes one that decrypts; the
// timestamp and ephemeral key go through the replay register.
func (k *Keys) respondResumed(prologue, msg []byte, source string, strikes *Strikes, now time.Time) (*Responder, error) {
	var id [16]byte
	if len(msg) < 1+len(id) {
		return nil, fmt.Errorf("%w: truncated resumed first message from %q", ErrAuth, source)
	}
	copy(id[:], msg[1:])
	s, ok := k.sessions.lookup(id, now)
	if !ok {
		return nil, fmt.Errorf("%w: unknown or expired session from %q", ErrRetry, source)
	}
	if s.source != source {
		return nil, fmt.Errorf("%w: session of %q used by a circuit from %q", ErrAuth, s.source, source)
	}
	if e := msg[1+len(id):]; len(e) > 32 && strikes.Seen(e[:32]) {
		return nil, fmt.Errorf("%w: %w", ErrRetry, ErrReplay) // as below, before decrypting
	}
	r := &Responder{k: k, mode: modeResume, source: source, sess: s}
	var err error
	if r.hs, err = k.resumeHandshake(false, prologue, id, s.psk[:]); err != nil {
		return nil, err
	}
	payload, _, _, err := r.hs.ReadMessage(nil, msg[1+len(id):])
	if err != nil {
		return nil, fmt.Errorf("%w: resumed first message from %q does not decrypt: %v", ErrAuth, source, err)
	}
	if len(payload) < 8 {
		return nil, fmt.Errorf("%w: resumed first message from %q has no timestamp", ErrAuth, source)
	}
	r.peer = s.peer
	r.peer.ts = time.Unix(0, int64(binary.BigEndian.Uint64(payload)))
	r.peer.early = payload[8:]
	if err := checkEarly(r.peer.early, source); err != nil {
		return nil, err
	}
	if err := strikes.Check(r.hs.PeerEphemeral(), source, r.peer.ts, now); err != nil {
		return nil, err
	}
	r.eph = bytes.Clone(r.hs.PeerEphemeral())
	k.sessions.opened(s)
	return r, nil
}

// Early is the early data of an IK first message.
func (r *Responder) Early() []byte { return r.peer.early }

// Reply appends the framed reply to b. In IK it also returns the session;
// in XX the session comes from Finish.
func (r *Responder) Reply(b []byte, now time.Time) ([]byte, *Session, error) {
	if r.hs == nil {
		return b, nil, errFinished
	}
	var payload []byte
	var err error
	st := r.statement()
	switch r.mode {
	case modeXX:
		payload = r.k.appendIdentity(nil, now, appendStatement(nil, st))
	case modeIK:
		if payload, err = r.k.issue(nil, r, st, now); err != nil {
			return b, nil, err
		}
	case modeResume:
		payload = appendStatement(nil, st)
	}
	var cs1, cs2 *noise.CipherState
	b, err = writeFramed(b, nil, func(out []byte) (msg []byte, err error) {
		msg, cs1, cs2, err = r.hs.WriteMessage(out, payload)
		return msg, err
	})
	if err != nil {
		return b, nil, fmt.Errorf("seal: reply: %w", err)
	}
	if r.mode != modeXX {
		return b, r.established(cs2, cs1), nil
	}
	return b, nil, nil
}

// Finish reads the third (XX) message and authenticates the source.
func (r *Responder) Finish(msg []byte, now time.Time) (*Session, error) {
	if r.hs == nil {
		return nil, errFinished
	}
	if r.tookAbandoned {
		return nil, fmt.Errorf("%w: the open from %q names a first message taken before", ErrForgedRetry, r.source)
	}
	payload, cs1, cs2, err := r.hs.ReadMessage(nil, msg)
	if err != nil || cs1 == nil {
		return nil, fmt.Errorf("%w: third message from %q: %v", ErrAuth, r.source, err)
	}
	if r.peer, err = r.k.verifyIdentity(payload, r.source, r.hs.PeerStatic(), now); err != nil {
		return nil, err
	}
	if len(r.peer.early) != 0 {
		return nil, fmt.Errorf("%w: data in the third message from %q", ErrAuth, r.source)
	}
	return r.established(cs2, cs1), nil
}

// PeerRecord is the source's verified key record once authenticated.
func (r *Responder) PeerRecord() *KeyRecord { return r.peer.rec }

// PeerGroups are the authorization groups in the source's verified
// certificate once authenticated (nil before, or when it has none). The
// caller must not modify them.
func (r *Responder) PeerGroups() []string { return r.peer.groups }
