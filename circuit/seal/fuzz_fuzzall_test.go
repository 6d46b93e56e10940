package seal

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzFinish changes the destination's reply, or the source's third
// message of a full handshake, on the way (cut to a length, bytes flipped,
// bytes added): what any relay of the circuit can do. The end that reads
// the message completes the handshake only when it arrived unchanged; a
// changed one fails with ErrAuth.
func FuzzFinish(f *testing.F) {
	m := newMesh(f, "s", "d")
	rec := m.keys["d"].Record()
	// mode: 0 full (XX), 1 one message (IK), 2 resumed; third: change the
	// third message rather than the reply (full only).
	f.Add(byte(0), false, uint16(0xffff), []byte(nil), []byte(nil))
	f.Add(byte(1), false, uint16(0xffff), []byte(nil), []byte(nil))
	f.Add(byte(2), false, uint16(0xffff), []byte(nil), []byte(nil))
	f.Add(byte(0), true, uint16(0xffff), []byte{0, 0, 1}, []byte(nil))
	f.Add(byte(1), false, uint16(31), []byte(nil), []byte(nil))
	f.Add(byte(2), false, uint16(0xffff), []byte(nil), []byte{0})
	f.Add(byte(1), false, uint16(0), []byte(nil), []byte(nil))
	f.Fuzz(func(t *testing.T, mode byte, third bool, cut uint16, flip, extra []byte) {
		s, d := m.keys["s"], m.keys["d"]
		pro := Prologue("d", "s", "svc", 0)
		ini := initiateMode(t, s, d, pro, &rec, mode)
		now := time.Now()
		m1, err := ini.First(nil, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		r, err := d.Respond(pro, m1[2:], "s", NewStrikes(0, 0, now.Add(-time.Second)), now)
		if err != nil {
			if !ini.Resumed() || !errors.Is(err, ErrRetry) {
				t.Fatalf("respond: %v", err)
			}
			// d took the session of a resumed open whose reply an earlier
			// input changed: s learns it so, and opens in full next.
			if !ini.Refused() {
				t.Fatal("a refused resumption is not known to the source")
			}
			return
		}
		r.SourceLarge(ini.StatesLarge())
		m2, _, err := r.Reply(nil, now)
		if err != nil {
			t.Fatal(err)
		}
		change := func(msg []byte) ([]byte, bool) {
			out := append([]byte(nil), msg...)
			if int(cut) < len(out) {
				out = out[:cut]
			}
			for i, b := range flip {
				if i < len(out) {
					out[i] ^= b
				}
			}
			out = append(out, extra...)
			return out, !bytes.Equal(out, msg)
		}
		reply, changed := m2[2:], false
		if !third || !ini.Full() {
			reply, changed = change(reply)
		}
		_, m3, err := ini.Finish(reply, nil, now)
		switch {
		case changed && err == nil:
			t.Fatalf("mode %d: a changed reply (%d of %d bytes) completed the handshake", mode%3, len(reply), len(m2)-2)
		case err != nil && !changed:
			t.Fatalf("mode %d: the reply as sent failed: %v", mode%3, err)
		case err != nil && !errors.Is(err, ErrAuth):
			t.Fatalf("mode %d: a changed reply failed with %v, not ErrAuth", mode%3, err)
		case err != nil || !ini.Full():
			return
		}
		msg, changed := m3[2:], false
		if third {
			msg, changed = change(msg)
		}
		_, err = r.Finish(msg, now)
		switch {
		case changed && err == nil:
			t.Fatalf("a changed third message (%d of %d bytes) authenticated the source", len(msg), len(m3)-2)
		case err != nil && !changed:
			t.Fatalf("the third message as sent failed: %v", err)
		case err != nil && !errors.Is(err, ErrAuth):
			t.Fatalf("a changed third message failed with %v, not ErrAuth", err)
		}
	})
}

// initiateMode starts s's handshake to d: mode%3 0 full (XX), 1 one
// message (IK, d's record rec known), 2 resumed (after a handshake that
// gave s a session to resume, when it holds none).
func initiateMode(t testing.TB, s, d *Keys, pro []byte, rec *KeyRecord, mode byte) *Initiator {
	t.Helper()
	var ini *Initiator
	var err error
	switch mode % 3 {
	case 0:
		ini, err = s.InitiateFresh(pro, d.Node(), nil)
	case 1:
		ini, err = s.InitiateFresh(pro, d.Node(), rec)
	default:
		if !s.Resumable(d.Node()) {
			if _, _, _, err := handshake(t, s, d, d.Node(), rec, nil); err != nil {
				t.Fatal(err)
			}
		}
		ini, err = s.Initiate(pro, d.Node(), rec)
	}
	if err != nil {
		t.Fatal(err)
	}
	return ini
}
