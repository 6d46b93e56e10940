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
	// costHold is how many consecutive samples must agree on a change
	// beyond the threshold, in the same direction, before it is reported:
	// a spike shorter than that (a peer descheduled for a few hundred ms
	// inflates the RTT) never reaches routing.
	costHold = 5
	// A link to a peer whose previous link was lost (not closed) within
	// flapMemory starts at flapFactor times its measured cost, the excess
	// decaying by flapDecay per sample (to nothing in about 30 s of 200 ms
	// probes), so a link that recovers does not pull routes back at once
	// and a flapping one does not churn the mesh.
	flapMemory = time.Minute
	flapFactor = 4.0
	flapDecay  = 0.97
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
	penalty  float64 // flap damping multiplier, 1 when none
	hold     int     // consecutive samples beyond the threshold (signed: + up, - down)
}

// newQualityMeter starts a meter; pinned costs never change. A meter for
// a link that replaces a lost one (flapped) starts with the flap penalty.
func newQualityMeter(pinned Cost, flapped bool) *qualityMeter {
	m := &qualityMeter{reported: MinCost, penalty: 1}
	if flapped {
		m.penalty = flapFactor
	}
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
	first := !m.started
	if first {
		m.started = true
		m.smooth = raw
	} else {
		m.smooth += ewmaWeight * (raw - m.smooth)
	}
	changed := false
	if !m.pinned {
		next := Cost(min(max(m.smooth*m.penalty+0.5, float64(MinCost)), maxCost))
		if m.penalty > 1 {
			m.penalty = 1 + (m.penalty-1)*flapDecay
			if m.penalty < 1.01 {
				m.penalty = 1
			}
		}
		diff := float64(next) - float64(m.reported)
		if diff < 0 {
			diff = -diff
		}
		switch beyond := diff >= minCostChange && diff > costThreshold*float64(m.reported); {
		case first:
			m.reported, changed = next, next != m.reported
		case !beyond:
			m.hold = 0
		case next > m.reported:
			m.hold = max(m.hold, 0) + 1
		default:
			m.hold = min(m.hold, 0) - 1
		}
		if m.hold >= costHold || m.hold <= -costHold {
			m.reported, changed, m.hold = next, true, 0
		}
	}
	return Quality{RTT: srtt, RTTVar: rttvar, Loss: m.loss, Cost: m.reported, Pinned: m.pinned}, changed
}
