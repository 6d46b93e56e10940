package seal

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

// handshakeModes runs fn once per handshake mode between fresh keys s and
// d (made SmallRecordsOnly as asked), fn running the handshake: XX (no
// key of d known), IK (d's record known), and resumed (after an IK).
func handshakeModes(t *testing.T, sSmall, dSmall bool, fn func(t *testing.T, mode string, s, d *Keys, rec *KeyRecord)) {
	for _, mode := range []string{"XX", "IK", "resumed"} {
		t.Run(fmt.Sprintf("%s/source-small=%t/dest-small=%t", mode, sSmall, dSmall), func(t *testing.T) {
			m := newMesh(t, "s", "d")
			s, d := m.keys["s"], m.keys["d"]
			if sSmall {
				s.SmallRecordsOnly()
			}
			if dSmall {
				d.SmallRecordsOnly()
			}
			rec := d.Record()
			switch mode {
			case "XX":
				fn(t, mode, s, d, nil)
				return
			case "resumed":
				if _, _, _, err := handshake(t, s, d, "d", &rec, nil); err != nil {
					t.Fatal(err)
				}
				if !s.Resumable("d") {
					t.Fatal("no session to resume")
				}
			}
			fn(t, mode, s, d, &rec)
		})
	}
}

// Each end seals records of more than MaxData bytes only to an end that
// stated it reads them, in every handshake mode, whichever end predates
// the statements (SmallRecordsOnly); an end that does reads them whatever
// the other end does, one that does not refuses them.
func TestRecordSizeStatements(t *testing.T) {
	size := func(large bool) int {
		if large {
			return MaxLargeData
		}
		return MaxData
	}
	for _, sSmall := range []bool{false, true} {
		for _, dSmall := range []bool{false, true} {
			handshakeModes(t, sSmall, dSmall, func(t *testing.T, mode string, s, d *Keys, rec *KeyRecord) {
				is, rs, r, err := handshake(t, s, d, "d", rec, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got := r.Resumed(); got != (mode == "resumed") {
					t.Fatalf("resumed %t", got)
				}
				both := !sSmall && !dSmall
				for _, c := range []struct {
					what      string
					got, want int
				}{
					{"source sends", is.MaxSend(), size(both)},
					{"source reads", is.MaxRecv(), size(!sSmall)},
					{"destination sends", rs.MaxSend(), size(both)},
					{"destination reads", rs.MaxRecv(), size(!dSmall)},
				} {
					if c.got != c.want {
						t.Errorf("%s records of up to %d bytes, want %d", c.what, c.got, c.want)
					}
				}
				// The largest record each way opens at the other end.
				for _, p := range []struct{ from, to *Session }{{is, rs}, {rs, is}} {
					data := bytes.Repeat([]byte{7}, p.from.MaxSend())
					out, err := p.from.Seal(nil, RecordData, data)
					if err != nil {
						t.Fatal(err)
					}
					if _, got, err := p.to.Open(out[2:]); err != nil || !bytes.Equal(got, data) {
						t.Fatalf("a record of %d bytes: %v", len(data), err)
					}
				}
			})
		}
	}
}

// A relay that clears the open header's large-records flag of a source
// that set it makes the handshake fail at the source with ErrIntegrity
// (the destination's authenticated reply says it did not see the flag),
// in every mode. One that sets the flag for a source that predates it
// makes the destination send records that source refuses with
// ErrIntegrity.
func TestRelayChangesLargeFlag(t *testing.T) {
	no, yes := false, true
	handshakeModes(t, false, false, func(t *testing.T, mode string, s, d *Keys, rec *KeyRecord) {
		_, _, _, err := handshakeFlag(t, s, d, "d", rec, nil, &no)
		if !errors.Is(err, ErrIntegrity) {
			t.Fatalf("flag cleared on the way: %v, want ErrIntegrity", err)
		}
		if mode == "IK" && s.Resumable("d") {
			t.Error("the source kept the ticket of a failed handshake")
		}
	})
	handshakeModes(t, true, false, func(t *testing.T, mode string, s, d *Keys, rec *KeyRecord) {
		is, rs, _, err := handshakeFlag(t, s, d, "d", rec, nil, &yes)
		if err != nil {
			t.Fatal(err)
		}
		out, err := rs.Seal(nil, RecordData, make([]byte, MaxData+1))
		if err != nil {
			t.Fatalf("the destination believes the added flag: %v", err)
		}
		if _, _, err := is.Open(out[2:]); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("a record of %d bytes at a source that reads %d: %v, want ErrIntegrity", MaxData+1, MaxData, err)
		}
	})
}

// A ticket's id carries the destination's statement and nothing else: the
// two statements give different ids, neither is taken for a random id,
// and a random id carries none.
func TestTicketStatement(t *testing.T) {
	psk := [32]byte{1, 2, 3}
	for _, st := range []byte{stateReadsLarge, stateReadsLarge | stateSawLarge} {
		if got := ticketStatement(ticketID(psk, st), psk); got != st {
			t.Errorf("statement %d: read back %d", st, got)
		}
		if got := ticketStatement(ticketID(psk, st), [32]byte{9}); got != 0 {
			t.Errorf("statement %d under another key: read %d", st, got)
		}
	}
	if got := ticketStatement([16]byte{1}, psk); got != 0 {
		t.Errorf("a random id: statement %d", got)
	}
}

// Whatever a destination's authenticated reply carries where sources that
// predate statements look at nothing (the payload of an IK or resumed
// reply, the rest of the identity of an XX one), Finish fails with
// ErrAuth or ErrIntegrity or gives a session that seals records of more
// than MaxData bytes only when the reply stated that the destination
// reads them, and saw the flag this source set.
func FuzzReplyStatement(f *testing.F) {
	m := newMesh(f, "s", "d")
	s, d := m.keys["s"], m.keys["d"]
	rec := d.Record()
	pro := Prologue("d", "s", "svc", 0)
	psk := [32]byte{5}
	for _, st := range []byte{0, stateReadsLarge, stateReadsLarge | stateSawLarge, 0xff} {
		for mode := range byte(3) {
			f.Add(mode, appendStatement(nil, st))
		}
		f.Add(byte(1), appendTicket(nil, ticketID(psk, st), psk, time.Minute))
	}
	f.Add(byte(1), appendTicket(nil, [16]byte{1}, psk, time.Minute))
	f.Fuzz(func(t *testing.T, mode byte, payload []byte) {
		now := time.Now()
		ini := initiateMode(t, s, d, pro, &rec, mode)
		m1, err := ini.First(nil, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		r, err := d.Respond(pro, m1[2:], "s", NewStrikes(0, 0, now.Add(-time.Second)), now)
		if err != nil {
			ini.Refused() // a ticket an earlier input made up
			return
		}
		body := payload
		if r.Full() {
			body = d.appendIdentity(nil, now, payload)
		}
		reply, err := writeFramed(nil, nil, func(out []byte) ([]byte, error) {
			msg, _, _, err := r.hs.WriteMessage(out, body)
			return msg, err
		})
		if err != nil {
			return // too long for one message
		}
		is, _, err := ini.Finish(reply[2:], nil, now)
		if err != nil {
			if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrIntegrity) {
				t.Fatalf("error %v wraps neither ErrAuth nor ErrIntegrity", err)
			}
			return
		}
		st := statementOf(payload)
		if r.mode == modeIK {
			st = 0
			if id, psk, _, _, err := parseTicket(payload); err == nil && len(payload) > 0 {
				st = ticketStatement(id, psk)
			}
		}
		if st&stateReadsLarge != 0 && st&stateSawLarge == 0 {
			t.Fatal("a reply that did not see the source's flag was taken")
		}
		if large := is.MaxSend() > MaxData; large != (st&stateReadsLarge != 0) {
			t.Fatalf("statement %#x: records of up to %d bytes", st, is.MaxSend())
		}
	})
}

// BenchmarkRecord seals and opens one record of MaxData, then of
// MaxLargeData bytes: the work per byte at both ends of a bulk circuit,
// less the path's.
// go test -run '^$' -bench Record ./circuit/seal/
func BenchmarkRecord(b *testing.B) {
	for _, size := range []int{MaxData, MaxLargeData} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			m := newMesh(b, "s", "d")
			rec := m.keys["d"].Record()
			is, rs, _, err := handshake(b, m.keys["s"], m.keys["d"], "d", &rec, nil)
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, size)
			buf := make([]byte, 0, size+Overhead)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				out, err := is.Seal(buf[:0], RecordData, data)
				if err == nil {
					_, _, err = rs.Open(out[2:])
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
