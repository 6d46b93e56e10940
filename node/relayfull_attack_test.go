package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestRelayedFullHandshakesLeaveOthersTheirBudget: m, holding a valid
// certificate, is a neighbour of the relay r and sends, through r, opens
// to d whose first message costs d Diffie-Hellman operations, built once
// and replayed (no cryptography at m): a full (XX) one, a full one written
// after its header, and a one-message (IK) one that fails to decrypt. d
// charged all of them to its budget of full handshakes for the link they
// arrive on (r's), whatever source they claim, so h, an honest neighbour
// of r that never reached d (its first circuit needs the full handshake),
// was refused `overloaded` 10 times of 10. Now r lets each incoming link
// forward at most Limits.RelayFullHandshakesPerLink full first messages a
// second (reading the message's mode with the header), and d charges
// failed one-message ones to a budget of their own. The budget is lowered
// to 2 a second (burst 2) so that the test does not depend on the
// machine's speed; at the default (128) m needs only more than 128
// replayed first messages a second through r.
func TestRelayedFullHandshakesLeaveOthersTheirBudget(t *testing.T) {
	for _, kind := range []firstKind{firstFull, firstBogusOneMessage, firstFullApart} {
		t.Run(kind.String(), func(t *testing.T) {
			c := newCluster(t, true)
			c.tweak = func(cfg *Config) { cfg.Limits.FullHandshakesPerLink = 2 }
			c.build("m-r", "h-r", "r-d")
			c.waitRoute("m", "d", 2)
			c.waitRoute("h", "d", 2)
			m, h := c.nodes["m"], c.nodes["h"]
			l := m.link("r")
			if l == nil {
				t.Fatal("no link m-r")
			}
			d := c.nodes["d"]
			rec := d.seal.Load().Record()
			start := time.Now()
			sent, overloaded, stop := floodCostlyFirst(t, m, "d", &rec, kind, l)
			time.Sleep(500 * time.Millisecond)

			refused, tries, ok := dialUntilAccepted(t, h, "d")
			stop()
			el := time.Since(start)
			t.Logf("m sent %d replayed first messages (%s) through r (%d refused overloaded); h's first dial to d was refused overloaded %d times in %d tries (succeeded: %v)",
				sent.Load(), kind, overloaded.Load(), refused, tries, ok)
			if refused > 0 {
				t.Errorf("m, through r, spent d's full-handshake budget for r's link: honest h's first circuit to d was refused overloaded %d times of %d", refused, tries)
			}
			if kind == firstBogusOneMessage {
				// d answers them retry before any cryptography once r's
				// link spent its budget of failures (2 a second), and r
				// refuses them overloaded past its own.
				if failed, limit := d.limits.ikFailed.Load(), uint64(2+2*int(el.Seconds()+1)); failed > limit {
					t.Errorf("d ran the cryptography of %d of m's %d bogus first messages in %v, beyond the budget (at most %d)", failed, sent.Load(), el, limit)
				}
				if d.limits.ikRetried.Load() == 0 && overloaded.Load() == 0 {
					t.Errorf("none of m's %d bogus first messages was refused, retry unread at d or overloaded at r", sent.Load())
				}
			} else if overloaded.Load() == 0 {
				t.Errorf("none of m's %d replayed first messages was refused overloaded", sent.Load())
			}
		})
	}
}

// firstKind is the first handshake message a flood replays.
type firstKind int

const (
	firstFull               firstKind = iota // a full (XX) first message
	firstBogusOneMessage                     // a one-message (IK) first message that fails to decrypt
	firstFullApart                           // a full first message, written after its header
	firstReplayedOneMessage                  // a valid one-message (IK) first message, taken once and then refused as a replay
)

func (k firstKind) String() string {
	return [...]string{"full", "bogus one-message", "full written apart", "replayed one-message"}[k]
}

// floodCostlyFirst has m send, on each of links, opens to dest whose first
// message, of the given kind, is built once and replayed (no cryptography
// at m), from 16 goroutines per link, until stop. rec is dest's key
// record, for the one-message kind.
func floodCostlyFirst(t *testing.T, m *Node, dest string, rec *seal.KeyRecord, kind firstKind, ls ...links.Link) (sent, overloaded *atomic.Int64, stop func()) {
	t.Helper()
	o := &circuit.Open{Dest: dest, Source: m.Name(), Service: EchoService, HopLimit: 15, Flags: circuit.FlagEarly | circuit.FlagSealed}
	open, err := o.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	hl := len(open)
	var peer *seal.KeyRecord
	if kind == firstBogusOneMessage || kind == firstReplayedOneMessage {
		peer = rec
	}
	ini, err := m.seal.Load().Initiate(seal.Prologue(o.Dest, o.Source, o.Service, uint16(o.Flags)), o.Dest, peer)
	if err != nil {
		t.Fatal(err)
	}
	if open, err = ini.First(open, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if kind == firstBogusOneMessage {
		open[hl+2+1+32+3] ^= 0xff // inside the encrypted static key: fails after the es DH
	}
	sent, overloaded = new(atomic.Int64), new(atomic.Int64)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, l := range ls {
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-done:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					s, err := l.OpenStream(ctx)
					cancel()
					if err != nil {
						return
					}
					parts := [][]byte{open}
					if kind == firstFullApart {
						parts = [][]byte{open[:hl], open[hl:]}
					}
					var werr error
					for i, p := range parts {
						if i > 0 {
							time.Sleep(20 * time.Millisecond) // so that the header travels alone
						}
						if _, werr = s.Write(p); werr != nil {
							break
						}
					}
					if werr != nil {
						s.Reset(circuit.CloseCancelled)
						continue
					}
					sent.Add(1)
					if res, err := circuit.ReadResult(s, 0); err == nil && res.Code == circuit.Overloaded {
						overloaded.Add(1)
					}
					s.Reset(circuit.CloseCancelled)
				}
			}()
		}
	}
	return sent, overloaded, func() { close(done); wg.Wait() }
}

// dialUntilAccepted has h dial dest up to 10 times, 200 ms apart while
// refused overloaded, until one succeeds (h then knows dest's key).
func dialUntilAccepted(t *testing.T, h *Node, dest string) (refused, tries int, ok bool) {
	t.Helper()
	for tries < 10 && !ok {
		tries++
		cn, err := h.Dial(ctxT(t, 10*time.Second), dest, EchoService)
		switch {
		case err == nil:
			ok = true
			cn.Close()
		case errors.Is(err, circuit.ErrOverloaded):
			refused++
			time.Sleep(200 * time.Millisecond)
		default:
			t.Fatalf("%s's dial to %s: %v", h.Name(), dest, err)
		}
	}
	return refused, tries, ok
}

// An honest source s opens its first circuit to each of 6 destinations
// behind its one neighbour r, at once: each needs the full handshake (s
// knows none of their keys). Every destination's budget for r's link
// (FullHandshakesPerLink, 8 here) takes them easily, and r budgets the
// full first messages arriving on s's link to RelayFullHandshakesPerLink
// (a quarter: 2) per destination: none is refused. (Budgeted by incoming
// link alone, 4 of the 6 were refused "overloaded".)
func TestRelayBudgetLeavesFanOutAlone(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.Limits.FullHandshakesPerLink = 8 }
	const dests = 6
	edges := []string{"s-r"}
	for i := range dests {
		edges = append(edges, fmt.Sprintf("r-d%d", i))
	}
	c.build(edges...)
	for i := range dests {
		c.waitRoute("s", fmt.Sprintf("d%d", i), 2)
	}
	s := c.nodes["s"]
	var mu sync.Mutex
	var refused []string
	var wg sync.WaitGroup
	for i := range dests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := fmt.Sprintf("d%d", i)
			cn, err := s.Dial(ctxT(t, 10*time.Second), d, EchoService)
			if err == nil {
				cn.Close()
				return
			}
			if !errors.Is(err, circuit.ErrOverloaded) {
				t.Errorf("dial %s: %v", d, err)
				return
			}
			mu.Lock()
			refused = append(refused, fmt.Sprintf("%s: %v", d, err))
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(refused) > 0 {
		t.Fatalf("%d of %d honest first dials refused overloaded by the relay although every destination had budget: %v", len(refused), dests, refused)
	}
}
