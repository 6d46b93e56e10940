package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// shortAnswerBound gives a a HeaderTimeout of 1 s (the time an open
// through one next hop gets for its answer while another is left) and a
// DialTimeout of 8 s; the other nodes keep theirs.
func shortAnswerBound(cfg *Config) {
	if cfg.Name == "a" {
		cfg.Limits.HeaderTimeout = time.Second
		cfg.DialTimeout = 8 * time.Second
	}
}

// On the diamond a–{b,c}–d where routing prefers b, b swallows what it
// relays from the start (it holds the answers, or drops every byte),
// its certificate valid and its links and probes healthy. a's first
// Dial to d must open through c, after a's header timeout (1 s) on b
// and well within its DialTimeout (8 s), and leave b a suspect. Before,
// it waited on b for the whole DialTimeout ("holds the answers") or d's
// header timeout ("drops the bytes") and failed; only the next Dial went
// through c.
func TestAttackSwallowingRelayFirstDialMoves(t *testing.T) {
	for _, tc := range swallowingRelays() {
		t.Run(tc.name, func(t *testing.T) {
			firstDialsThroughC(t, diamondRelayedByBWith(t, tc.relay, shortAnswerBound), "swallows")
		})
	}
}

// slowBFailingC is the diamond a–{b,c}–d with b relaying through slowB,
// c through failC, and a's header timeout 2 s and DialTimeout
// dialTimeout.
func slowBFailingC(t *testing.T, slowB, failC func(in, out links.Stream) (links.Stream, links.Stream), dialTimeout time.Duration) *cluster {
	return diamondRelayedByBWith(t, slowB, func(cfg *Config) {
		switch cfg.Name {
		case "a":
			cfg.Limits.HeaderTimeout = 2 * time.Second
			cfg.DialTimeout = dialTimeout
		case "c":
			cfg.hooks = &hooks{relay: failC}
		}
	})
}

// b, the preferred relay, is honest but slow: each open it carries
// reaches d late (after 3.2 s), and c fails every circuit it carries
// (it resets it before d's answer gets back, or drops its bytes so that
// d's header timeout ends it). a has a header timeout of 2 s and a
// DialTimeout of 5 s. a's Dial leaves b's open running after 2 s, tries
// c beside it, and b's open carries the circuit within the deadline
// (1.8 s to spare, for a loaded machine: with 0.8 s, the open through b
// took longer than that once, at a load average of 11). Before, b's
// open was reset after the header timeout and tried again once c
// failed: the second open through b needed 3.2 s more than the deadline
// left ("resets"), or c's failure, not a reset of its link, ended the
// dial before b was tried again ("drops the bytes").
func TestDialPassedOverNextHopStillCarriesTheCircuit(t *testing.T) {
	t.Parallel()
	var resets atomic.Int64
	stuck := new(atomic.Bool)
	stuck.Store(true)
	for _, tc := range []struct {
		name  string
		relay func(in, out links.Stream) (links.Stream, links.Stream)
	}{
		{"resets", func(in, out links.Stream) (links.Stream, links.Stream) {
			return &answerResetStream{Stream: in, out: out, resets: &resets}, out
		}},
		{"drops the bytes", func(in, out links.Stream) (links.Stream, links.Stream) {
			resets.Add(1)
			return stuckStream{in, stuck}, stuckStream{out, stuck}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resets.Store(0)
			slow := &slowPath{first: 3200 * time.Millisecond, replied: make(chan struct{})}
			c := slowBFailingC(t, func(in, out links.Stream) (links.Stream, links.Stream) {
				return &slowIn{Stream: in, p: slow}, &slowOut{Stream: out, p: slow}
			}, tc.relay, 5*time.Second)
			dialEchoVia(t, c.nodes["a"], "b", "the dial through a slow b, c failing")
			if resets.Load() == 0 {
				t.Fatal("c carried no circuit: the dial did not try c, the test proves nothing")
			}
			// b carried the circuit after all: the next dials do not
			// try it last.
			if avoid := c.nodes["a"].suspects.order("d", time.Now(), nil); slices.Contains(avoid, "b") {
				t.Fatalf("a's suspects for d after b carried the dial: %v, want no b", avoid)
			}
		})
	}
}

// b and c both hold every answer: a's Dial passes b over after 1 s, then
// waits on c for the rest of the deadline and fails with the deadline's
// error at the deadline, no earlier.
func TestDialThroughSwallowingRelaysFailsWithCtxErr(t *testing.T) {
	t.Parallel()
	hold := func(in, out links.Stream) (links.Stream, links.Stream) { return silentStream{in}, out }
	c := diamondRelayedByBWith(t, hold, func(cfg *Config) {
		shortAnswerBound(cfg)
		if cfg.Name == "c" {
			cfg.hooks = &hooks{relay: hold}
		}
	})
	const deadline = 4 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	conn, err := c.nodes["a"].DialWith(ctx, "d", EchoService, DialOptions{RecordPath: true})
	took := time.Since(start)
	if err == nil {
		conn.Close()
		t.Fatalf("the dial opened through %v: b and c pass nothing back", conn.Path())
	}
	if !errors.Is(err, context.DeadlineExceeded) || took < deadline {
		t.Fatalf("the dial failed after %v with %v, want the deadline's error after %v", took.Round(time.Millisecond), err, deadline)
	}
	if avoid := c.nodes["a"].suspects.order("d", time.Now(), nil); fmt.Sprint(avoid) != "[b c]" {
		t.Fatalf("a's suspects for d: %v, want [b c]", avoid)
	}
}

// lateAnswers passes what comes back through a relay on only after delay
// from the first of it.
type lateAnswers struct {
	links.Stream
	delay time.Duration
	once  sync.Once
}

func (s *lateAnswers) Write(b []byte) (int, error) {
	s.once.Do(func() { time.Sleep(s.delay) })
	return s.Stream.Write(b)
}

// b passes d's answers back 3.2 s late, so a passes it over after its
// header timeout (2 s) and tries c, which resets every circuit it carries; d has no
// service "nosuch". a's Dial must fail with d's refusal as soon as it
// comes back through b, not wait for routing until its deadline (6 s)
// and fail with "link lost" as it did when the failure of an open passed
// over was not judged as the others are.
func TestDialPassedOverNextHopRefusalEndsTheDial(t *testing.T) {
	t.Parallel()
	var resets atomic.Int64
	c := slowBFailingC(t, func(in, out links.Stream) (links.Stream, links.Stream) {
		return &lateAnswers{Stream: in, delay: 3200 * time.Millisecond}, out
	}, func(in, out links.Stream) (links.Stream, links.Stream) {
		return &answerResetStream{Stream: in, out: out, resets: &resets}, out
	}, 6*time.Second)
	start := time.Now()
	conn, err := c.nodes["a"].Dial(context.Background(), "d", "nosuch")
	took := time.Since(start)
	if err == nil {
		conn.Close()
		t.Fatal("the dial to d/nosuch opened")
	}
	if !errors.Is(err, circuit.ErrNoService) || took >= 5*time.Second {
		t.Fatalf("the dial failed after %v with %v, want d's no-service refusal once b passed it back (about 3.2 s)", took.Round(time.Millisecond), err)
	}
	if resets.Load() == 0 {
		t.Fatalf("c carried no circuit: the dial did not try c, the test proves nothing (%v after %v)", err, took)
	}
	t.Logf("refused after %v: %v", took.Round(time.Millisecond), err)
}
