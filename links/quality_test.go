package links

import (
	"testing"
	"time"
)

func TestRawCostFormula(t *testing.T) {
	cases := []struct {
		srtt, rttvar time.Duration
		loss         float64
		want         float64
	}{
		{0, 0, 0, float64(MinCost)},                            // loopback: floor
		{10 * time.Millisecond, 0, 0, 1000},                    // 10 ms = 1000 units
		{10 * time.Millisecond, 5 * time.Millisecond, 0, 2000}, // variation counts twice
		{10 * time.Millisecond, 0, 0.1, 2000},                  // 10 % loss doubles
		{time.Hour, 0, 1, maxCost},                             // capped
	}
	for _, c := range cases {
		if got := rawCost(c.srtt, c.rttvar, c.loss); got != c.want {
			t.Errorf("rawCost(%v, %v, %v) = %v, want %v", c.srtt, c.rttvar, c.loss, got, c.want)
		}
	}
}

func TestQualityMeterDampsJitter(t *testing.T) {
	m := newQualityMeter(0, false)
	q, _ := m.sample(10*time.Millisecond, time.Millisecond, 0, 0)
	base := q.Cost
	if base < 1100 || base > 1300 {
		t.Fatalf("first cost %d, want about 1200", base)
	}
	// ±5 % jitter around the same RTT never produces an event.
	for i := range 100 {
		j := time.Duration(i%3-1) * 500 * time.Microsecond
		if _, changed := m.sample(10*time.Millisecond+j, time.Millisecond, uint64(i*10), 0); changed {
			t.Fatalf("jitter sample %d changed the cost", i)
		}
	}
}

func TestQualityMeterFollowsStepAndLoss(t *testing.T) {
	m := newQualityMeter(0, false)
	m.sample(time.Millisecond, 0, 0, 0)
	events := 0
	var q Quality
	for i := range 40 {
		var changed bool
		q, changed = m.sample(20*time.Millisecond, 0, uint64(i+1)*100, 0)
		if changed {
			events++
		}
	}
	if q.Cost < 1800 || q.Cost > 2000 {
		t.Fatalf("cost after a step to 20 ms: %d, want about 2000", q.Cost)
	}
	if events == 0 || events > 10 {
		t.Fatalf("%d cost events for one step, want a few", events)
	}
	// 20 % loss from now on roughly triples the cost.
	for i := range 40 {
		q, _ = m.sample(20*time.Millisecond, 0, 4000+uint64(i+1)*100, uint64(i+1)*20)
	}
	if q.Loss < 0.15 || q.Loss > 0.21 {
		t.Fatalf("loss %v, want about 0.2", q.Loss)
	}
	if q.Cost < 5000 {
		t.Fatalf("cost with 20%% loss: %d, want > 5000", q.Cost)
	}
}

func TestQualityMeterPinned(t *testing.T) {
	m := newQualityMeter(777, false)
	for i := range 20 {
		q, changed := m.sample(time.Duration(i)*time.Millisecond, 0, 0, 0)
		if changed || q.Cost != 777 || !q.Pinned {
			t.Fatalf("pinned meter reported %+v changed=%v", q, changed)
		}
	}
}

// TestFlapPenaltyDecays: a link that replaces a lost one starts at
// flapFactor times its measured cost and comes down to it as samples
// accumulate, reporting each step as a cost change.
func TestFlapPenaltyDecays(t *testing.T) {
	const rtt = 2 * time.Millisecond
	plain := newQualityMeter(0, false)
	q0, _ := plain.sample(rtt, 0, 100, 0)
	m := newQualityMeter(0, true)
	q, _ := m.sample(rtt, 0, 100, 0)
	if q.Cost < 3*q0.Cost {
		t.Fatalf("flapped link starts at cost %d, measured %d: want about %vx", q.Cost, q0.Cost, flapFactor)
	}
	var changes int
	for i := range 300 {
		var changed bool
		q, changed = m.sample(rtt, 0, uint64(200+100*i), 0)
		if changed {
			changes++
		}
	}
	if float64(q.Cost) > (1+costThreshold)*float64(q0.Cost) || changes == 0 {
		t.Fatalf("after 300 samples: cost %d (measured %d), %d changes reported", q.Cost, q0.Cost, changes)
	}
	t.Logf("penalised cost came down to %d in %d reported steps", q.Cost, changes)
}
