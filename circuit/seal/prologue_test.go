package seal

import (
	"errors"
	"testing"
	"time"
)

// A replayed one-message (IK) first message is refused on its ephemeral
// key before the destination does any DH: a copy whose ciphertext no
// longer decrypts is refused as a replay, not as a message that does not
// decrypt (which would mean the DH ran first).
func TestReplayedFirstMessageRefusedBeforeDH(t *testing.T) {
	m := newMesh(t, "s", "d")
	src, dst := m.keys["s"], m.keys["d"]
	rec := dst.Record()
	pro := Prologue("d", "s", "svc", 0)
	now := time.Now()
	ini, err := src.InitiateFresh(pro, "d", &rec)
	if err != nil {
		t.Fatal(err)
	}
	m1, err := ini.First(nil, []byte("early"), now)
	if err != nil {
		t.Fatal(err)
	}
	strikes := NewStrikes(0, 0, now.Add(-time.Second))
	if _, err := dst.Respond(pro, m1[2:], "s", strikes, now); err != nil {
		t.Fatalf("first use: %v", err)
	}
	changed := append([]byte(nil), m1[2:]...)
	changed[len(changed)-1] ^= 1
	_, err = dst.Respond(pro, changed, "s", strikes, now)
	if !errors.Is(err, ErrReplay) || !errors.Is(err, ErrRetry) {
		t.Fatalf("replayed first message with a changed ciphertext: %v, want ErrReplay (refused before decrypting)", err)
	}
}

// The prologue binds the open header's flags: a first message made for
// one set of flags does not decrypt at a destination that received
// another, in the one-message and the resumed handshake.
func TestPrologueBindsFlags(t *testing.T) {
	m := newMesh(t, "s", "d")
	src, dst := m.keys["s"], m.keys["d"]
	rec := dst.Record()
	now := time.Now()
	const sent, received = 1<<2 | 1<<3, 1 << 2 // SEALED|RESUMABLE, RESUMABLE cleared
	ini, err := src.InitiateFresh(Prologue("d", "s", "svc", sent), "d", &rec)
	if err != nil {
		t.Fatal(err)
	}
	m1, err := ini.First(nil, []byte("early"), now)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dst.Respond(Prologue("d", "s", "svc", received), m1[2:], "s", NewStrikes(0, 0, now.Add(-time.Second)), now)
	if err == nil {
		t.Fatal("a first message bound to other flags was accepted")
	}
	if _, err := dst.Respond(Prologue("d", "s", "svc", sent), m1[2:], "s", NewStrikes(0, 0, now.Add(-time.Second)), now); err != nil {
		t.Fatalf("the same message with the flags it was made for: %v", err)
	}
}
