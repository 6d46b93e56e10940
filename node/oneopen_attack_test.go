package node

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
)

// TestAttackOneMessageOpensSpendTheirSourcesBudget: m, a member with a
// valid certificate and a neighbour of d, sends d one-message (IK) opens
// that succeed, as fast as four goroutines can, each with a fresh
// ephemeral key and no session to resume, each reset once answered. Every
// one costs d three or four X25519 operations (es; e, ee and se for its
// reply; ss once) and m two. Meanwhile h, another neighbour of d, opens
// circuits to d's echo service one after the other, as it did for as
// long before the attack. Successful one-message handshakes from one
// source are answered within Limits.OneMessagePerSource a second, after a
// burst of as many; the rest are refused overloaded before any
// Diffie-Hellman operation. The attack lasts phase, and on a machine so
// starved that m's opens have not yet outrun the budget, until d refused
// one (at most patience). The log gives h's open latency and the
// process's CPU in both phases.
func TestAttackOneMessageOpensSpendTheirSourcesBudget(t *testing.T) {
	const (
		rate    = 16
		phase   = 3 * time.Second
		workers = 4
	)
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.OneMessageHandshakesPerSource = rate
		cfg.Limits.MaxCircuitsPerSource = rate // the budget's burst
	}
	c.build("m-d", "h-d")
	m, d, h := c.nodes["m"], c.nodes["d"], c.nodes["h"]
	// h's first circuits: a full handshake, then a one-message one that
	// gives h a session ticket, which its later opens resume.
	for range 2 {
		if err := roundTrip(t, h, "d", EchoService, []byte("warm")); err != nil {
			t.Fatal(err)
		}
	}
	honest := func(stop <-chan struct{}) (lat []time.Duration, failed int) {
		for {
			select {
			case <-stop:
				return lat, failed
			default:
			}
			start := time.Now()
			if err := roundTrip(t, h, "d", EchoService, []byte("h")); err != nil {
				t.Logf("h's open: %v", err)
				failed++
				continue
			}
			lat = append(lat, time.Since(start))
		}
	}

	stop := make(chan struct{})
	cpu0 := processCPU()
	time.AfterFunc(phase, func() { close(stop) })
	quiet, quietFailed := honest(stop)
	quietCPU := processCPU() - cpu0

	rec := d.seal.Load().Record()
	// What m's own side of one open costs (its first message, two X25519
	// operations), to tell d's CPU from m's in the phase's total.
	// And what d's side costs (its reply), on a register of its own.
	const sample = 200
	pro := seal.Prologue("d", "m", EchoService, uint16(circuit.FlagEarly|circuit.FlagSealed))
	firsts := make([][]byte, sample)
	made := time.Now() // the register below takes the firsts stamped since
	cpu0 = processCPU()
	for i := range firsts {
		ini, err := m.seal.Load().Initiate(pro, "d", &rec)
		if err != nil {
			t.Fatal(err)
		}
		if firsts[i], err = ini.First(nil, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	perFirst := (processCPU() - cpu0) / sample
	// Started before the first of them was stamped: on a starved machine
	// making them takes seconds, and a register started a second before
	// the answers refused the earliest as stamped before it started.
	strikes := seal.NewStrikes(0, 0, made)
	cpu0 = processCPU()
	for _, first := range firsts {
		r, err := d.seal.Load().Respond(pro, first[2:], "m", strikes, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Reply(nil, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	perAnswer := (processCPU() - cpu0) / sample

	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var accepted, overloaded, other, errs atomic.Int64
	var wg sync.WaitGroup
	cpu0 = processCPU()
	start := time.Now()
	// The attack ends once it lasted phase and d refused one of its opens:
	// at load 35, four workers' opens (a round trip each through a starved
	// process) came at 3 to 18 a second, under the budget, and d had
	// nothing to refuse in 3 s.
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if time.Since(start) >= phase && overloaded.Load() > 0 {
					cancel()
					return
				}
			}
		}
	})
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				code, err := sendFirstMessage(ctx, m, &rec, "d")
				switch {
				case err != nil:
					errs.Add(1)
				case code == circuit.Accepted:
					accepted.Add(1)
				case code == circuit.Overloaded:
					overloaded.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	during, duringFailed := honest(ctx.Done())
	wg.Wait()
	elapsed := time.Since(start)
	attackCPU := processCPU() - cpu0

	t.Logf("quiet %v: h opened %d circuits (%d failed), p50 %v, p99 %v; process CPU %v",
		phase, len(quiet), quietFailed, quantile(quiet, 50), p99(quiet), quietCPU)
	sent := accepted.Load() + overloaded.Load() + other.Load()
	t.Logf("attack %v: m's one-message opens answered %d, refused overloaded %d, otherwise %d, failed %d; h opened %d circuits (%d failed), p50 %v, p99 %v; process CPU %v, of which about %v m's first messages (%v each) and %v d's handshakes answered (%v each)",
		elapsed, accepted.Load(), overloaded.Load(), other.Load(), errs.Load(), len(during), duringFailed, quantile(during, 50), p99(during), attackCPU,
		perFirst*time.Duration(sent), perFirst, perAnswer*time.Duration(accepted.Load()), perAnswer)
	if quietFailed > 0 || duringFailed > 0 || len(during) == 0 {
		t.Fatalf("h's opens failed: %d before the attack, %d of %d during it", quietFailed, duringFailed, duringFailed+len(during))
	}
	// The budget is rate a second after a burst of rate, over the time
	// the attack took, whatever the machine's speed.
	bound := rate + int(float64(rate)*elapsed.Seconds()) + 1
	if accepted.Load() > int64(bound) || overloaded.Load() == 0 {
		t.Fatalf("d answered %d of m's one-message opens in %v and refused %d overloaded, want at most %d answered (%d a second after a burst of %d) and the rest refused",
			accepted.Load(), elapsed, overloaded.Load(), bound, rate, rate)
	}
}

// TestForgedOneMessageOpensLeaveTheSourcesBudget: m sends d one-message
// opens that name h as their source, as relayed by m (a neighbour's own
// opens must name it), made with m's own keys, more than
// h's budget of one-message handshakes (2 a second, burst 2). None proves
// h, so none spends h's budget (they spend the link's budget of failed
// one-message handshakes): h's one-message opens to d afterwards, as
// many as its burst, are all answered.
func TestForgedOneMessageOpensLeaveTheSourcesBudget(t *testing.T) {
	const rate = 2
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.OneMessageHandshakesPerSource = rate
		cfg.Limits.MaxCircuitsPerSource = rate
	}
	c.build("m-d", "h-d")
	m, d, h := c.nodes["m"], c.nodes["d"], c.nodes["h"]
	if err := roundTrip(t, h, "d", EchoService, []byte("warm")); err != nil { // h learns d's key
		t.Fatal(err)
	}
	rec := d.seal.Load().Record()
	codes := map[circuit.Code]int{}
	for range 20 {
		o := &circuit.Open{Dest: "d", Source: "h", Service: EchoService, Hop: 1, HopLimit: 15, Path: []string{"m"}} // as if relayed
		s, code, err := openByHand(ctxT(t, 10*time.Second), m, m.link("d"), o, &rec)
		if s != nil {
			s.Reset(circuit.CloseCancelled)
		}
		if err != nil {
			t.Fatal(err)
		}
		codes[code]++
	}
	if codes[circuit.Accepted] > 0 || codes[circuit.Policy] == 0 {
		t.Fatalf("d accepted one-message opens naming h made with m's keys: %v", codes)
	}
	for i := range rate {
		h.seal.Load().ForgetSession("d") // a one-message handshake each
		if err := roundTrip(t, h, "d", EchoService, []byte("h")); err != nil {
			t.Fatalf("h's one-message open %d after m's 20 forged ones (%v): %v", i, codes, err)
		}
	}
}

// TestHonestBurstOfOneMessageOpensWithinBudget: h opens 32 circuits to d
// at once, each with a one-message handshake (d forgets every session,
// so a resumed open is retried with one), with a budget of 2 a second
// and MaxCircuitsPerSource 32. The budget holds as many tokens as the
// per-source circuit limit, so a burst that limit allows loses none.
func TestHonestBurstOfOneMessageOpensWithinBudget(t *testing.T) {
	const burst = 32
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.OneMessageHandshakesPerSource = 2
		cfg.Limits.MaxCircuitsPerSource = burst
		if cfg.Name == "d" {
			cfg.hooks = &hooks{forgetSessions: true}
		}
	}
	c.build("h-d")
	h := c.nodes["h"]
	if err := roundTrip(t, h, "d", EchoService, []byte("warm")); err != nil { // a full handshake: h learns d's key
		t.Fatal(err)
	}
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() {
			if err := roundTrip(t, h, "d", EchoService, []byte{byte(i)}); err != nil {
				t.Logf("open %d: %v", i, err)
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of a burst of %d one-message opens failed with a budget of 2 a second, burst %d", failed.Load(), burst, burst)
	}
}
