package seal

import (
	"errors"
	"testing"
	"time"
)

// An open made again after a Retry names the flight refused; a destination
// that took that flight (a relay forged the Retry) states it in its
// authenticated reply and refuses the third message, and the source fails
// with ErrForgedRetry. One it did not take (an honest Retry) goes ahead.
// For a one-message and a resumed first flight.
func TestAttackForgedRetryAfterTakenFlight(t *testing.T) {
	for _, resumed := range []bool{false, true} {
		for _, taken := range []bool{true, false} {
			_, src, dst, rec := resumedPair(t)
			pro := Prologue("d", "s", "svc", 0)
			now := time.Now()
			strikes := NewStrikes(0, 0, now.Add(-time.Minute))
			ini, m1 := earlyFlight(t, src, rec, pro, resumed, now)
			r1, err := dst.Respond(pro, m1, "s", strikes, now)
			if err != nil {
				t.Fatalf("resumed %v: the first flight: %v", resumed, err)
			}
			if taken {
				strikes.Take(r1.Ephemeral()) // accepted; its answer is lost on the path
			}
			again, r2 := openAgain(t, src, dst, pro, ini.Flight(), strikes, now)
			if r2.TookAbandoned() != taken {
				t.Fatalf("resumed %v, taken %v: the destination says it took the flight: %v", resumed, taken, r2.TookAbandoned())
			}
			third, err := replyAgain(t, again, r2, now)
			if taken {
				if !errors.Is(err, ErrForgedRetry) || !errors.Is(err, ErrIntegrity) || len(third) > 0 {
					t.Fatalf("resumed %v: source: %v (third message %d bytes), want ErrForgedRetry and none", resumed, err, len(third))
				}
				continue
			}
			if err != nil {
				t.Fatalf("resumed %v: an honest retry fails: %v", resumed, err)
			}
			if _, err := r2.Finish(third[2:], now); err != nil {
				t.Fatalf("resumed %v: the destination refuses the honest retry: %v", resumed, err)
			}
		}
	}
}

// earlyFlight is src's first flight to d with "transfer 100 to m" as early
// data, stamped at: resumed (src holds a ticket of d's) or one-message.
// The message is unframed.
func earlyFlight(t *testing.T, src *Keys, rec KeyRecord, pro []byte, resumed bool, at time.Time) (*Initiator, []byte) {
	t.Helper()
	if !resumed {
		return oneMessageFirst(t, src, rec, pro, "transfer 100 to m", at)
	}
	ini, err := src.Initiate(pro, "d", &rec)
	if err != nil || !ini.Resumed() {
		t.Fatalf("the source does not resume: %v", err)
	}
	m1, err := ini.First(nil, []byte("transfer 100 to m"), at)
	if err != nil {
		t.Fatal(err)
	}
	return ini, m1[2:]
}

// openAgain is src's open made again after a Retry answered its flight
// (the full handshake naming it), and dst's side once it read the first
// message.
func openAgain(t *testing.T, src, dst *Keys, pro, flight []byte, strikes *Strikes, now time.Time) (*Initiator, *Responder) {
	t.Helper()
	again, err := src.InitiateAfter(pro, "d", [][]byte{flight})
	if err != nil || !again.Full() {
		t.Fatalf("open made again: full %v, %v", again != nil && again.Full(), err)
	}
	m, err := again.First(nil, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	r, err := dst.Respond(pro, m[2:], "s", strikes, now)
	if err != nil {
		t.Fatal(err)
	}
	return again, r
}

// replyAgain has the destination reply to the open made again and the
// source read the reply: the source's framed third message, or its error.
func replyAgain(t *testing.T, again *Initiator, r *Responder, now time.Time) ([]byte, error) {
	t.Helper()
	r.SourceLarge(again.StatesLarge()) // as the open header says
	reply, _, err := r.Reply(nil, now)
	if err != nil {
		t.Fatal(err)
	}
	_, third, err := again.Finish(reply[2:], nil, now)
	return third, err
}

// A full first message whose payload is not a list of ephemeral keys, or
// names more than MaxAbandoned, is refused.
func TestRespondRefusesMalformedAbandoned(t *testing.T) {
	_, src, dst, _ := resumedPair(t)
	pro := Prologue("d", "s", "svc", 0)
	now := time.Now()
	for _, n := range []int{1, 31, 33, MaxAbandoned*32 + 32} {
		ini, err := src.InitiateAfter(pro, "d", nil)
		if err != nil {
			t.Fatal(err)
		}
		ini.abandoned = [][]byte{make([]byte, n)}
		m, err := ini.First(nil, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dst.Respond(pro, m[2:], "s", NewStrikes(0, 0, now), now); !errors.Is(err, ErrAuth) {
			t.Errorf("%d bytes of names: %v, want ErrAuth", n, err)
		}
	}
}
