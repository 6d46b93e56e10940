package seal

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// A relay records a source's one-message first flight, early data and
// all, and replays it to the destination after the destination restarted:
// new Keys from the same certificate (so the same static key, which the
// flight was encrypted to) and an empty replay register started at the
// restart. The register refuses a flight stamped before its start; one
// stamped after it (its source's clock ahead of the destination's) may
// have been taken by the process before, so the destination, as a node
// does for a source that keeps its early data (circuit.FlagResendsEarly),
// takes the handshake but not the early data (MayPredate, DropEarly): the
// replay delivers nothing, whatever the lead, and the replayer, without
// the flight's ephemeral key, cannot read the reply or send a record. The
// honest source learns from the authenticated reply that its data was not
// taken (EarlyDropped) and sends it again. Before DropEarly, the fresh
// process took the replayed early data again at 5 and 20 s of lead.
func TestAttackReplayIntoARestartedDestination(t *testing.T) {
	const early = "transfer 100 to m"
	// The flight is captured at t0; the destination restarts 2 s later
	// and the relay replays the flight 1 s after that.
	const restart, replay = 2 * time.Second, 3 * time.Second
	for _, c := range []struct {
		lead  time.Duration // how far the source's clock runs ahead
		retry bool          // refused outright: stamped before the restart
	}{
		{0, true},
		{time.Second, true},
		{5 * time.Second, false},
		{20 * time.Second, false},
	} {
		t.Run(fmt.Sprintf("lead %v", c.lead), func(t *testing.T) {
			m := newMesh(t, "s", "d")
			src, dst := m.keys["s"], m.keys["d"]
			rec := dst.Record()
			pro := Prologue("d", "s", "svc", 0)
			t0 := time.Now()
			ini, flight := oneMessageFirst(t, src, rec, pro, early, t0.Add(c.lead))
			before := NewStrikes(0, 0, t0.Add(-time.Minute))
			r, err := dst.Respond(pro, flight, "s", before, t0)
			if err != nil || string(r.Early()) != early {
				t.Fatalf("the honest flight: %v", err)
			}
			if _, err := dst.Respond(pro, flight, "s", before, t0.Add(time.Second)); !errors.Is(err, ErrReplay) {
				t.Fatalf("replay before the restart: %v, want ErrReplay", err)
			}

			restarted, err := NewKeys(dst.id)
			if err != nil {
				t.Fatal(err)
			}
			if restarted.Record().Key != rec.Key {
				t.Fatal("the restarted destination has another static key")
			}
			fresh := NewStrikes(0, 0, t0.Add(restart))
			at := t0.Add(replay)
			r, err = restarted.Respond(pro, flight, "s", fresh, at)
			if c.retry {
				if !errors.Is(err, ErrRetry) {
					t.Fatalf("replay into the fresh process, source %v ahead: %v, want ErrRetry (stamped before the restart)", c.lead, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("replay into the fresh process, source %v ahead: %v", c.lead, err)
			}
			if !fresh.MayPredate(r.Stamp()) {
				t.Fatalf("a flight stamped %v after the restart does not count as one the process before may have taken", r.Stamp().Sub(t0.Add(restart)))
			}
			if !r.DropEarly(at) {
				t.Fatal("the destination cannot state that it dropped the early data")
			}
			if len(r.Early()) > 0 {
				t.Fatalf("replayed early data %q delivered by the fresh process", r.Early())
			}
			// The honest source, had it sent this flight, learns from the
			// reply that its data was not taken.
			r.SourceLarge(ini.StatesLarge())
			reply, _, err := r.Reply(nil, at)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := ini.Finish(reply[2:], nil, at); err != nil {
				t.Fatal(err)
			}
			if !ini.EarlyDropped() {
				t.Fatal("the reply does not state that the early data was dropped")
			}
			// The fresh process remembers it: a second replay fails.
			if _, err := restarted.Respond(pro, flight, "s", fresh, at.Add(time.Second)); !errors.Is(err, ErrReplay) {
				t.Fatalf("second replay into the fresh process: %v, want ErrReplay", err)
			}
		})
	}
}

// A resumed first message cannot be replayed into a restarted
// destination, whatever the source's clock: the fresh process holds no
// session, so the replay is refused (retry) before anything is decrypted.
func TestAttackReplayResumedIntoARestartedDestination(t *testing.T) {
	_, src, dst, rec := resumedPair(t)
	pro := Prologue("d", "s", "svc", 0)
	t0 := time.Now()
	ini, err := src.Initiate(pro, "d", &rec)
	if err != nil || !ini.Resumed() {
		t.Fatalf("the source does not resume: %v", err)
	}
	m1, err := ini.First(nil, []byte("transfer 100 to m"), t0.Add(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Respond(pro, m1[2:], "s", NewStrikes(0, 0, t0.Add(-time.Minute)), t0); err != nil {
		t.Fatalf("the honest flight: %v", err)
	}
	restarted, err := NewKeys(dst.id)
	if err != nil {
		t.Fatal(err)
	}
	_, err = restarted.Respond(pro, m1[2:], "s", NewStrikes(0, 0, t0.Add(2*time.Second)), t0.Add(3*time.Second))
	if !errors.Is(err, ErrRetry) {
		t.Fatalf("resumed flight replayed into the fresh process: %v, want ErrRetry", err)
	}
}

// A session ends at the source's certificate's expiry, not at its
// lifetime: a source whose certificate expired, or a thief of its ticket,
// cannot resume after it, though the ticket's 2 minutes have not passed
// and the source still offers it.
func TestAttackResumeAfterSourceCertificateExpired(t *testing.T) {
	m := newMesh(t, "d")
	d := m.keys["d"]
	now := time.Now()
	id, err := m.ca.IssueAt("s", now.Add(-time.Hour), now.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewKeys(id)
	if err != nil {
		t.Fatal(err)
	}
	rec := d.Record()
	if _, err := open(t, s, d, &rec, ""); err != nil {
		t.Fatal(err)
	}
	pro := Prologue("d", "s", "svc", 0)
	strikes := NewStrikes(0, 0, now.Add(-time.Second))
	resume := func(at time.Time) error {
		ini, err := s.Initiate(pro, "d", &rec)
		if err != nil {
			t.Fatal(err)
		}
		if !ini.Resumed() {
			t.Fatal("the source does not offer its session")
		}
		m1, err := ini.First(nil, []byte("x"), at)
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.Respond(pro, m1[2:], "s", strikes, at)
		return err
	}
	if err := resume(now.Add(10 * time.Second)); err != nil {
		t.Fatalf("resume while the certificate is valid: %v", err)
	}
	if err := resume(now.Add(31 * time.Second)); !errors.Is(err, ErrRetry) {
		t.Fatalf("resume after the source's certificate expired: %v, want ErrRetry", err)
	}
}

// Both ends rekey each direction after RekeyEvery records, the constant
// and not only a value a test sets: the key changes at that record and not
// before, the other end follows, and a record sealed under the first key
// does not open once the direction rekeyed.
func TestSessionRekeysAtRekeyEvery(t *testing.T) {
	m := newMesh(t, "s", "d")
	rec := m.keys["d"].Record()
	is, rs, _, err := handshake(t, m.keys["s"], m.keys["d"], "d", &rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if is.rekeyEvery != RekeyEvery || rs.rekeyEvery != RekeyEvery {
		t.Fatalf("sessions rekey every %d and %d records, want %d", is.rekeyEvery, rs.rekeyEvery, RekeyEvery)
	}
	first := is.send.UnsafeKey()
	var early []byte
	buf := make([]byte, 0, 64)
	for i := 0; i <= RekeyEvery; i++ {
		if i == RekeyEvery && is.send.UnsafeKey() == first {
			t.Fatalf("no rekey after %d records", RekeyEvery)
		}
		if i < RekeyEvery && is.send.UnsafeKey() != first {
			t.Fatalf("rekeyed after %d records, want %d", i, RekeyEvery)
		}
		r, err := is.Seal(buf[:0], RecordData, []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			early = append([]byte(nil), r[2:]...)
		}
		if _, d, err := rs.Open(r[2:]); err != nil || d[0] != byte(i) {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if rs.recv.UnsafeKey() != is.send.UnsafeKey() {
		t.Fatal("the two ends hold different keys after the rekey")
	}
	if _, _, err := rs.Open(early); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("a record of the first key after the rekey: %v, want ErrIntegrity", err)
	}
}

// A destination states that it dropped the early data in the statement
// of its IK reply whether its keys are small (a statement of that bit
// alone) or not, and the source learns it; a reply that drops nothing
// says nothing of the kind.
func TestDropEarlyStatedInEveryStatement(t *testing.T) {
	for _, c := range []struct{ destSmall, drop bool }{
		{false, true}, {true, true}, {false, false}, {true, false},
	} {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			m := newMesh(t, "s", "d")
			src, dst := m.keys["s"], m.keys["d"]
			if c.destSmall {
				dst.SmallRecordsOnly()
			}
			pro := Prologue("d", "s", "svc", 0)
			now := time.Now()
			ini, flight := oneMessageFirst(t, src, dst.Record(), pro, "early", now)
			r, err := dst.Respond(pro, flight, "s", NewStrikes(0, 0, now.Add(-time.Minute)), now)
			if err != nil {
				t.Fatal(err)
			}
			r.SourceLarge(ini.StatesLarge())
			if c.drop && (!r.DropEarly(now) || len(r.Early()) > 0) {
				t.Fatal("DropEarly left the early data")
			}
			reply, _, err := r.Reply(nil, now)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := ini.Finish(reply[2:], nil, now); err != nil {
				t.Fatal(err)
			}
			if ini.EarlyDropped() != c.drop {
				t.Fatalf("source learned dropped %t, want %t", ini.EarlyDropped(), c.drop)
			}
		})
	}
}

// oneMessageFirst is src's one-message first message to d (its record
// rec), carrying early and stamped at, unframed, and its initiator.
func oneMessageFirst(t *testing.T, src *Keys, rec KeyRecord, pro []byte, early string, at time.Time) (*Initiator, []byte) {
	t.Helper()
	ini, err := src.InitiateFresh(pro, "d", &rec)
	if err != nil {
		t.Fatal(err)
	}
	m1, err := ini.First(nil, []byte(early), at)
	if err != nil {
		t.Fatal(err)
	}
	return ini, m1[2:]
}
