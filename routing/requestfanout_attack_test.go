package routing

import (
	"fmt"
	"testing"
	"time"
)

// TestAttackSeqnoRequestsFanOutFromTheHub measures what one neighbour's
// seqno requests make a node send to its OTHER neighbours. m, a
// neighbour of the hub h, asks h once a second for the next seqno of each
// of the origins linked to h (one request entry each, about 9 bytes).
// h forwards each to the origin, which raises its seqno (at most once a
// second: raiseSelf) and announces it; the new seqno answers a request h
// forwarded, so h sends it at once, with its attestation, to every
// neighbour (reselect's triggerAll, RFC 8966 §3.8.1.2), not only to m,
// which asked. Each request entry from m thus costs h about two entries
// (update and attestation) to each of its other neighbours, and each of
// them a signature check.
//
// The test asserts the bound that holds: one raise per origin per second
// whatever m sends, and h sending the answer at most once to each
// neighbour per raise, beyond what h sends them without m (measured in
// the same run, and allowed once more). Sending the answer only to the neighbours whose
// requests h forwarded (m here) would send the others nothing until
// their periodic update.
func TestAttackSeqnoRequestsFanOutFromTheHub(t *testing.T) {
	const n, secs = 100, 5
	origins := make([]string, n)
	for i := range origins {
		origins[i] = fmt.Sprintf("o%03d", i)
	}
	s := newStar(t, origins)
	s.run(10 * time.Second)
	h := s.engines["h"]
	others := len(origins) + 1 // the origins and v

	type tally struct{ mEntries, mBytes, out, outBytes, raises int }
	phase := func(attack bool) tally {
		var c tally
		bumps0 := 0
		for _, o := range origins {
			bumps0 += int(s.engines[o].Stats().SeqnoBumps)
		}
		for step := 0; step < secs*200; step++ {
			if attack && step%200 == 0 {
				var batch []entry
				send := func() {
					p := encodeMessage(batch)
					c.mEntries += len(batch)
					c.mBytes += len(p)
					mustReceive(t, h, s.now, "m", p)
					batch = nil
				}
				for _, o := range origins {
					r, _ := h.Lookup(o)
					batch = append(batch, entry{kind: kindRequest, origin: o, seqno: r.Seqno + 1, hopcnt: 127})
					if len(batch) == DefaultMaxRoutesPerMessage {
						send()
					}
				}
				if len(batch) > 0 {
					send()
				}
			}
			s.now = s.now.Add(5 * time.Millisecond)
			for _, name := range s.order {
				e := s.engines[name]
				if nt := e.NextTick(); !nt.IsZero() && !nt.After(s.now) {
					e.Tick(s.now)
				}
			}
			// deliver, counting what h sends to neighbours other than m
			for moved := true; moved; {
				moved = false
				for _, name := range s.order {
					for _, msg := range s.engines[name].Ready().Messages {
						to, ok := s.engines[msg.To]
						if !ok {
							continue // to m
						}
						if name == "h" {
							c.out += len(decodeAll(t, []Message{msg}))
							c.outBytes += len(msg.Payload)
						}
						moved = true
						mustReceive(t, to, s.now, name, msg.Payload)
					}
				}
			}
		}
		for _, o := range origins {
			c.raises += int(s.engines[o].Stats().SeqnoBumps)
		}
		c.raises -= bumps0
		return c
	}
	quiet := phase(false)
	loud := phase(true)
	t.Logf("%ds without m: h sent its other %d neighbours %d entries (%d bytes)", secs, others, quiet.out, quiet.outBytes)
	t.Logf("%ds with m's requests: m sent %d request entries (%d bytes), the origins raised %d times, h sent its other neighbours %d entries (%d bytes): %.0f entries and %.0f bytes for each entry and byte of m's",
		secs, loud.mEntries, loud.mBytes, loud.raises, loud.out, loud.outBytes,
		float64(loud.out-quiet.out)/float64(loud.mEntries), float64(loud.outBytes-quiet.outBytes)/float64(loud.mBytes))
	if max := n * (secs + 1); loud.raises > max {
		t.Errorf("the origins raised %d times in %ds on one request each a second, want at most %d", loud.raises, secs, max)
	}
	// Each raise: its update and its attestation, once to each neighbour;
	// and as much again as h sends without m (its periodic updates fall
	// differently in the two phases).
	if extra, max := loud.out-quiet.out, 2*loud.raises*others+quiet.out; extra > max {
		t.Errorf("h sent its other neighbours %d more entries with m's requests, over %d raises: more than once per raise to each (%d)", extra, loud.raises, max)
	}
	if loud.raises == 0 {
		t.Fatal("no origin raised its seqno: the requests did not reach them")
	}
}
