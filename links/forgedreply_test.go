package links

import (
	"encoding/binary"
	"testing"
	"time"
)

// TestForgedProbeRepliesLeaveCostAlone: a neighbour with a valid
// certificate, 30 ms away, wants its link to look closer than it is, so
// that routing prefers it: it sends the node probe replies it never got
// a probe for, with sequence numbers ahead of the node's and stamps of
// the node's clock at the moment they are sent (the attacker shares the
// node's clock here: the best forgery there is), as if every probe were
// answered at once. The link's cost comes from QUIC's RTT estimator and
// loss counters, not from replies: it stays at the 30 ms the path
// takes, and the handler is told no lower cost.
func TestForgedProbeRepliesLeaveCostAlone(t *testing.T) {
	_, b, fc, la := faultyPair(t, nil)
	lb := acceptedLink(t, b, "a")
	fc.setDelay(30 * time.Millisecond)
	waitFor(t, "b's cost to follow 30 ms of latency", patience, func() bool {
		q := lb.Quality()
		last, _ := b.rec.reported()
		return q.RTT >= 30*time.Millisecond && q.Cost >= 3000 && last >= 3000
	})
	_, changes := b.rec.reported()

	// Forged replies, about 40 a probe interval, for three times the
	// samples a change of cost must hold for (costHold).
	start := time.Now()
	var seq uint64 = 1 << 20
	var forged int
	for time.Since(start) < 3*costHold*DefaultProbeInterval {
		var batch []byte
		for range 8 {
			seq++
			p := binary.BigEndian.AppendUint64(nil, seq)
			p = binary.BigEndian.AppendUint64(p, uint64(time.Now().UnixNano()))
			batch, _ = appendFrame(batch, frameProbeReply, p)
			forged++
		}
		rawControl(t, la, batch)
		time.Sleep(5 * time.Millisecond)
	}
	q := lb.Quality()
	b.rec.mu.Lock()
	later := append([]Quality(nil), b.rec.costs[changes:]...)
	b.rec.mu.Unlock()
	t.Logf("a forged %d probe replies over %v: b's quality %+v; %d cost changes meanwhile", forged, time.Since(start).Round(time.Millisecond), q, len(later))
	if q.RTT < 25*time.Millisecond || q.Cost < 2500 {
		t.Errorf("b measures its link to a, 30 ms away, at %v (cost %d) after forged replies", q.RTT, q.Cost)
	}
	for _, c := range later {
		if c.Cost < 2500 {
			t.Errorf("b told routing a cost of %d (RTT %v) for a link 30 ms long", c.Cost, c.RTT)
		}
	}
	if err := lb.Err(); err != nil {
		t.Fatalf("b's link to a ended: %v", err)
	}
}
