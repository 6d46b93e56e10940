package seal

import (
	"errors"
	"testing"
	"time"
)

// A relay that keeps a one-message or resumed first flight instead of
// forwarding it, answers the source with a forged Retry, and sends the
// flight on once the open made again (which names it as abandoned)
// went ahead does not make the destination take the flight's early data
// a second time: the destination records the names when it reads the
// full handshake's first message, and refuses the flight with Retry
// (a replay), whenever it comes after that message within its stamp's
// window: before the third message, after it, or stamped as far ahead
// as the register allows.
func TestAttackForgedRetryThenLateAbandonedFlight(t *testing.T) {
	for _, resumed := range []bool{false, true} {
		for _, when := range []string{"after the third message", "before the third message", "late in the window"} {
			_, src, dst, rec := resumedPair(t)
			pro := Prologue("d", "s", "svc", 0)
			now := time.Now()
			strikes := NewStrikes(0, 0, now.Add(-time.Minute))
			stamp := now
			if when == "late in the window" {
				stamp = now.Add(DefaultStrikeWindow - time.Second) // the source's clock ahead
			}
			ini, m1 := earlyFlight(t, src, rec, pro, resumed, stamp)
			// The relay keeps m1 and answers the source with a forged
			// Retry: the source opens again with XX naming the flight.
			again, r2 := openAgain(t, src, dst, pro, ini.Flight(), strikes, now)
			if r2.TookAbandoned() {
				t.Fatal("the destination says it took a flight it never saw")
			}
			late := func(at time.Time) {
				t.Helper()
				r1, err := dst.Respond(pro, m1, "s", strikes, at)
				if err == nil {
					t.Errorf("resumed %v, %s: the destination accepted the abandoned flight, early data %q delivered a second time", resumed, when, r1.Early())
					return
				}
				if !errors.Is(err, ErrRetry) || !errors.Is(err, ErrReplay) {
					t.Errorf("resumed %v, %s: the abandoned flight: %v, want ErrRetry and ErrReplay", resumed, when, err)
				}
			}
			if when == "before the third message" {
				late(now.Add(time.Second))
			}
			third, err := replyAgain(t, again, r2, now)
			if err != nil {
				t.Fatalf("the open made again fails at the source: %v", err)
			}
			if _, err := r2.Finish(third[2:], now); err != nil {
				t.Fatal(err)
			}
			// The source now sends "transfer 100 to m" in its first
			// record; the relay sends the kept flight on.
			switch when {
			case "after the third message":
				late(now.Add(time.Second))
			case "late in the window":
				late(now.Add(2*DefaultStrikeWindow - 2*time.Second))
			}
		}
	}
}
