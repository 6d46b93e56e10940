package links

import "time"

// Cost model constants (docs/PROTOCOL.md, "Quality and cost").
const (
	costUnit       = 10 * time.Microsecond
	lossWeight     = 10      // 10 % loss doubles the cost
	maxCost        = 1 << 24 // cap, far above any real link
	ewmaWeight     = 0.25    // weight of a new sample in the EWMAs
	costThreshold  = 0.10    // relative change that produces a CostChanged
	minCostChange  = 1       // and the smallest absolute change
	lossMinPackets = 4       // intervals with fewer packets sent keep the old loss
)

// rawCost turns one measurement into a cost.
func rawCost(srtt, rttvar time.Duration, loss float64) float64 {
	c := float64(srtt+2*rttvar) / float64(costUnit)
	c = max(c, float64(MinCost))
	c *= 1 + lossWeight*min(max(loss, 0), 1)
	return min(c, maxCost)
}

// qualityMeter turns periodic QUIC statistics into a damped cost. It is
// driven by one goroutine and needs no locking.
type qualityMeter struct {
	pinned   bool
	reported Cost    // cost last reported to routing
	smooth   float64 // EWMA of the raw cost
	loss     float64 // EWMA of the per-interval loss fraction
	sent     uint64  // packet counters at the previous sample
	lost     uint64
	started  bool
}

// newQualityMeter starts a meter; pinned costs never change.
func newQualityMeter(pinned Cost) *qualityMeter {
	m := &qualityMeter{reported: MinCost}
	if pinned > 0 {
		m.pinned, m.reported = true, pinned
	}
	return m
}

// sample takes one measurement: the RTT estimator and the cumulative packet
// counters. It returns the quality and whether the reported cost changed.
func (m *qualityMeter) sample(srtt, rttvar time.Duration, sent, lost uint64) (Quality, bool) {
	if m.started && sent >= m.sent+lossMinPackets {
		dl := float64(0)
		if lost > m.lost {
			dl = float64(lost - m.lost)
		}
		frac := min(dl/float64(sent-m.sent), 1)
		m.loss += ewmaWeight * (frac - m.loss)
	}
	if !m.started || sent >= m.sent+lossMinPackets || sent < m.sent {
		m.sent, m.lost = sent, lost
	}
	raw := rawCost(srtt, rttvar, m.loss)
	if !m.started {
		m.started = true
		m.smooth = raw
	} else {
		m.smooth += ewmaWeight * (raw - m.smooth)
	}
	changed := false
	if !m.pinned {
		next := Cost(max(m.smooth+0.5, float64(MinCost)))
		diff := float64(next) - float64(m.reported)
		if diff < 0 {
			diff = -diff
		}
		if diff >= minCostChange && diff > costThreshold*float64(m.reported) {
			m.reported, changed = next, true
		}
	}
	return Quality{RTT: srtt, RTTVar: rttvar, Loss: m.loss, Cost: m.reported, Pinned: m.pinned}, changed
}
