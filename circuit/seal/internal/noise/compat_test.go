package noise

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	upstream "github.com/flynn/noise"
)

// The fork is wire compatible with upstream: the same handshake, with the
// same ephemeral keys (through Random), static keys, prologue, PSK and
// payloads, run with upstream on one side and the fork on the other, in
// both directions, produces byte for byte the messages, handshake hash
// and transport keys of the same handshake run with upstream on both
// sides, and the transport messages after it are the same too.

// spec is one handshake, described for both implementations.
type spec struct {
	pattern   HandshakePattern
	psk       int // placement, -1 for none
	cipher    string
	hash      string
	nonceDH   bool // the e values are random nonces (circuitmesh's resumption)
	prologue  []byte
	payloads  [][]byte
	transport int // messages each way after the handshake
}

// seeded is a deterministic Random: the bytes seed, seed+1, ...
type seeded byte

func (r *seeded) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(*r)
		*r++
	}
	return len(p), nil
}

// nonceDH is circuitmesh's resumption "DH": e is 32 random bytes, no DH.
type nonceDH struct{}

func (nonceDH) GenerateKeypair(rng io.Reader) (DHKey, error) {
	b := make([]byte, 32)
	_, err := io.ReadFull(rng, b)
	return DHKey{Public: b}, err
}
func (nonceDH) DH(_, _ []byte) ([]byte, error) { return nil, fmt.Errorf("no DH") }
func (nonceDH) DHLen() int                     { return 32 }
func (nonceDH) DHName() string                 { return "none" }

type upNonceDH struct{}

func (upNonceDH) GenerateKeypair(rng io.Reader) (upstream.DHKey, error) {
	k, err := nonceDH{}.GenerateKeypair(rng)
	return upstream.DHKey(k), err
}
func (upNonceDH) DH(_, _ []byte) ([]byte, error) { return nil, fmt.Errorf("no DH") }
func (upNonceDH) DHLen() int                     { return 32 }
func (upNonceDH) DHName() string                 { return "none" }

// party is one end of a handshake, of either implementation.
type party interface {
	write(payload []byte) (msg []byte, keys [][32]byte, err error)
	read(msg []byte) (payload []byte, keys [][32]byte, err error)
	handshakeHash() []byte
	encrypt(i int, p []byte) []byte // with the CipherState i of Split
	decrypt(i int, c []byte) ([]byte, error)
}

type forkParty struct {
	hs *HandshakeState
	cs [2]*CipherState
}

func (p *forkParty) done(cs1, cs2 *CipherState) [][32]byte {
	if cs1 == nil {
		return nil
	}
	p.cs = [2]*CipherState{cs1, cs2}
	return [][32]byte{cs1.UnsafeKey(), cs2.UnsafeKey()}
}

func (p *forkParty) write(payload []byte) ([]byte, [][32]byte, error) {
	msg, cs1, cs2, err := p.hs.WriteMessage(nil, payload)
	return msg, p.done(cs1, cs2), err
}

func (p *forkParty) read(msg []byte) ([]byte, [][32]byte, error) {
	out, cs1, cs2, err := p.hs.ReadMessage(nil, msg)
	return out, p.done(cs1, cs2), err
}

func (p *forkParty) handshakeHash() []byte { return p.hs.ChannelBinding() }
func (p *forkParty) encrypt(i int, b []byte) []byte {
	out, _ := p.cs[i].Encrypt(nil, nil, b)
	return out
}
func (p *forkParty) decrypt(i int, b []byte) ([]byte, error) { return p.cs[i].Decrypt(nil, nil, b) }

type upParty struct {
	hs *upstream.HandshakeState
	cs [2]*upstream.CipherState
}

func (p *upParty) done(cs1, cs2 *upstream.CipherState) [][32]byte {
	if cs1 == nil {
		return nil
	}
	p.cs = [2]*upstream.CipherState{cs1, cs2}
	return [][32]byte{cs1.UnsafeKey(), cs2.UnsafeKey()}
}

func (p *upParty) write(payload []byte) ([]byte, [][32]byte, error) {
	msg, cs1, cs2, err := p.hs.WriteMessage(nil, payload)
	return msg, p.done(cs1, cs2), err
}

func (p *upParty) read(msg []byte) ([]byte, [][32]byte, error) {
	out, cs1, cs2, err := p.hs.ReadMessage(nil, msg)
	return out, p.done(cs1, cs2), err
}

func (p *upParty) handshakeHash() []byte { return p.hs.ChannelBinding() }
func (p *upParty) encrypt(i int, b []byte) []byte {
	out, _ := p.cs[i].Encrypt(nil, nil, b)
	return out
}
func (p *upParty) decrypt(i int, b []byte) ([]byte, error) { return p.cs[i].Decrypt(nil, nil, b) }

// keys are the parties' static keys and pre-message ephemeral, fixed.
type keys struct{ si, sr DHKey }

func fixedKeys(t *testing.T) keys {
	si, err := DH25519.GenerateKeypair(bytes.NewReader(bytes.Repeat([]byte{1}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	sr, err := DH25519.GenerateKeypair(bytes.NewReader(bytes.Repeat([]byte{2}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return keys{si, sr}
}

// needs reports which static keys a pattern uses: the initiator's own,
// the responder's own, and the pre-messages each side knows.
func needs(p HandshakePattern) (is, rs, isr, rsi bool) {
	for _, m := range p.InitiatorPreMessages {
		if m == MessagePatternS {
			is, isr = true, true
		}
	}
	for _, m := range p.ResponderPreMessages {
		if m == MessagePatternS {
			rs, rsi = true, true
		}
	}
	for i, msg := range p.Messages {
		for _, m := range msg {
			if m == MessagePatternS || m == MessagePatternDHSE || m == MessagePatternDHES || m == MessagePatternDHSS {
				if i%2 == 0 && m == MessagePatternS {
					is = true
				} else if m == MessagePatternS {
					rs = true
				}
			}
		}
	}
	return
}

func (s spec) config(k keys, initiator bool, seed byte) Config {
	is, rs, isr, rsi := needs(s.pattern)
	ciphers := map[string]CipherFunc{"AESGCM": CipherAESGCM, "ChaChaPoly": CipherChaChaPoly}
	hashes := map[string]HashFunc{"SHA256": HashSHA256, "SHA512": HashSHA512, "BLAKE2b": HashBLAKE2b, "BLAKE2s": HashBLAKE2s}
	var dh DHFunc = DH25519
	if s.nonceDH {
		dh = nonceDH{}
	}
	r := seeded(seed)
	c := Config{CipherSuite: NewCipherSuite(dh, ciphers[s.cipher], hashes[s.hash]), Random: &r,
		Pattern: s.pattern, Initiator: initiator, Prologue: s.prologue}
	if s.psk >= 0 {
		c.PresharedKey, c.PresharedKeyPlacement = bytes.Repeat([]byte{0x42}, 32), s.psk
	}
	if initiator {
		if is {
			c.StaticKeypair = k.si
		}
		if rsi {
			c.PeerStatic = k.sr.Public
		}
	} else {
		if rs {
			c.StaticKeypair = k.sr
		}
		if isr {
			c.PeerStatic = k.si.Public
		}
	}
	return c
}

func (s spec) fork(t *testing.T, k keys, initiator bool, seed byte) party {
	hs, err := NewHandshakeState(s.config(k, initiator, seed))
	if err != nil {
		t.Fatal(err)
	}
	return &forkParty{hs: hs}
}

func (s spec) upstream(t *testing.T, k keys, initiator bool, seed byte) party {
	c := s.config(k, initiator, seed)
	ciphers := map[string]upstream.CipherFunc{"AESGCM": upstream.CipherAESGCM, "ChaChaPoly": upstream.CipherChaChaPoly}
	hashes := map[string]upstream.HashFunc{"SHA256": upstream.HashSHA256, "SHA512": upstream.HashSHA512,
		"BLAKE2b": upstream.HashBLAKE2b, "BLAKE2s": upstream.HashBLAKE2s}
	var dh upstream.DHFunc = upstream.DH25519
	if s.nonceDH {
		dh = upNonceDH{}
	}
	p := upstream.HandshakePattern{Name: s.pattern.Name}
	conv := func(ms []MessagePattern) []upstream.MessagePattern {
		var out []upstream.MessagePattern
		for _, m := range ms {
			out = append(out, upstream.MessagePattern(m))
		}
		return out
	}
	p.InitiatorPreMessages, p.ResponderPreMessages = conv(s.pattern.InitiatorPreMessages), conv(s.pattern.ResponderPreMessages)
	for _, m := range s.pattern.Messages {
		p.Messages = append(p.Messages, conv(m))
	}
	hs, err := upstream.NewHandshakeState(upstream.Config{
		CipherSuite: upstream.NewCipherSuite(dh, ciphers[s.cipher], hashes[s.hash]),
		Random:      c.Random, Pattern: p, Initiator: initiator, Prologue: c.Prologue,
		PresharedKey: c.PresharedKey, PresharedKeyPlacement: c.PresharedKeyPlacement,
		StaticKeypair: upstream.DHKey(c.StaticKeypair), PeerStatic: c.PeerStatic,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &upParty{hs: hs}
}

// transcript is everything a handshake and its transport messages put
// on the wire or derive.
type transcript struct {
	msgs [][]byte
	hash []byte
	keys [][32]byte
}

// run runs s between ini and res and returns the transcript, failing on
// any disagreement between the two ends.
func (s spec) run(t *testing.T, ini, res party) transcript {
	t.Helper()
	var tr transcript
	w, r := ini, res
	for i := range s.pattern.Messages {
		payload := s.payloads[i%len(s.payloads)]
		msg, wk, err := w.write(payload)
		if err != nil {
			t.Fatalf("message %d: write: %v", i, err)
		}
		got, rk, err := r.read(msg)
		if err != nil {
			t.Fatalf("message %d: read: %v", i, err)
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("message %d: payload %x, sent %x", i, got, payload)
		}
		if fmt.Sprint(wk) != fmt.Sprint(rk) {
			t.Fatalf("message %d: the ends' keys differ", i)
		}
		tr.msgs, tr.keys = append(tr.msgs, msg), wk
		w, r = r, w
	}
	if len(tr.keys) != 2 {
		t.Fatal("the handshake did not complete")
	}
	if tr.hash = ini.handshakeHash(); !bytes.Equal(tr.hash, res.handshakeHash()) {
		t.Fatal("the ends' handshake hashes differ")
	}
	for i := range s.transport {
		for dir, ends := range [][2]party{{ini, res}, {res, ini}} {
			p := fmt.Appendf(nil, "transport %d %d", i, dir)
			c := ends[0].encrypt(dir, p)
			got, err := ends[1].decrypt(dir, c)
			if err != nil || !bytes.Equal(got, p) {
				t.Fatalf("transport %d/%d: %q, %v", i, dir, got, err)
			}
			tr.msgs = append(tr.msgs, c)
		}
	}
	return tr
}

func TestWireCompatibleWithUpstream(t *testing.T) {
	k := fixedKeys(t)
	resume := HandshakePattern{Name: "circuitmesh-resume",
		Messages: [][]MessagePattern{{MessagePatternE}, {MessagePatternE}}}
	payloads := [][]byte{[]byte("early data in the first flight"), nil, bytes.Repeat([]byte{7}, 1000)}
	specs := []spec{
		{pattern: HandshakeIK, psk: -1, cipher: "AESGCM", hash: "SHA256"},
		{pattern: HandshakeXX, psk: -1, cipher: "AESGCM", hash: "SHA256"},
		{pattern: resume, psk: 0, cipher: "AESGCM", hash: "SHA256", nonceDH: true},
		{pattern: HandshakeNN, psk: 0, cipher: "AESGCM", hash: "SHA256"},
		{pattern: HandshakeIK, psk: 2, cipher: "ChaChaPoly", hash: "BLAKE2b"},
		{pattern: HandshakeXX, psk: 3, cipher: "ChaChaPoly", hash: "SHA512"},
		{pattern: HandshakeKK, psk: 1, cipher: "AESGCM", hash: "BLAKE2s"},
	}
	for _, s := range specs {
		s.prologue = []byte("circuitmesh seal v1\x00\x00\x01d\x00\x01s\x00\x03svc")
		s.payloads, s.transport = payloads, 3
		name := fmt.Sprintf("%s-psk%d-%s-%s", s.pattern.Name, s.psk, s.cipher, s.hash)
		t.Run(name, func(t *testing.T) {
			want := s.run(t, s.upstream(t, k, true, 0x10), s.upstream(t, k, false, 0x80))
			for _, c := range []struct {
				name     string
				ini, res party
			}{
				{"upstream-to-fork", s.upstream(t, k, true, 0x10), s.fork(t, k, false, 0x80)},
				{"fork-to-upstream", s.fork(t, k, true, 0x10), s.upstream(t, k, false, 0x80)},
				{"fork-to-fork", s.fork(t, k, true, 0x10), s.fork(t, k, false, 0x80)},
			} {
				got := s.run(t, c.ini, c.res)
				if len(got.msgs) != len(want.msgs) {
					t.Fatalf("%s: %d messages, upstream %d", c.name, len(got.msgs), len(want.msgs))
				}
				for i := range want.msgs {
					if !bytes.Equal(got.msgs[i], want.msgs[i]) {
						t.Errorf("%s: message %d differs from upstream's:\n%x\n%x", c.name, i, got.msgs[i], want.msgs[i])
					}
				}
				if !bytes.Equal(got.hash, want.hash) {
					t.Errorf("%s: handshake hash %x, upstream %x", c.name, got.hash, want.hash)
				}
				if fmt.Sprint(got.keys) != fmt.Sprint(want.keys) {
					t.Errorf("%s: transport keys differ from upstream's", c.name)
				}
			}
		})
	}
}
