package node

import (
	"bytes"
	"context"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// TestAttackTrickleDownloadsPinRelayLinkWindow: a member m linked to an
// honest relay r (linked to an honest d) opens 100 NoResume circuits
// through r to a d service that sends without end, and reads each at
// 24 KiB/s, above what the reclaim counts as a stall (16 KiB per
// ReaderStall), so that none is ever counted as stalled. r's splice reads
// each d→r stream only as fast as m takes the bytes, so each holds most of
// r's 512 KiB initial stream window: 100 of them fill r's 32 MiB window on
// its link from d, and every other circuit from d through r, and d's
// control stream, get almost no credit. Before: a 1 MiB echo of an honest
// neighbour h through r to d took 62-78 ms; during the attack it timed
// out at 10 s, and none of m's circuits was reset.
//
// Now the streams of one source (m's circuits carry m's key on r's link
// to d too) may hold at most half of the link window unread: r resets
// m's fullest streams (StalledCode) once they hold more, so the other half
// stays free and h's echoes go through. m's other circuits carry on.
func TestAttackTrickleDownloadsPinRelayLinkWindow(t *testing.T) {
	res := trickleDownloads(t, func(m *Node, _ int) (io.ReadCloser, error) {
		conn, err := m.DialWith(ctxT(t, 10*time.Second), "d", "bulk", DialOptions{NoResume: true})
		return conn, err
	})
	if res.fails > 0 {
		t.Errorf("%d of %d honest %d-byte echoes through r failed under the trickle (%v each)", res.fails, res.rounds, res.size, res.limit)
	}
	if res.ended == 0 {
		t.Errorf("none of m's %d trickled circuits was reset", res.opened)
	}
	if res.ended == res.opened {
		t.Errorf("all of m's %d circuits were reset: only those above its share should be", res.opened)
	}
}

// trickled is what trickleDownloads saw: m's circuits opened and reset,
// and h's echoes of size bytes under the attack, each within limit.
type trickled struct {
	opened, ended int64
	fails, rounds int
	size          int
	limit         time.Duration
}

// trickleDownloads is the attack of
// TestAttackTrickleDownloadsPinRelayLinkWindow, m opening its i-th
// circuit through r to d's bulk service with open.
func trickleDownloads(t *testing.T, open func(m *Node, i int) (io.ReadCloser, error)) trickled {
	if testing.Short() {
		t.Skip("an attack of about 30 s")
	}
	const circuits = 100
	const readChunk, readEvery = 24 << 10, time.Second
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "m" { // the attacker's own windows are its choice
			cfg.Limits.LinkWindow = 1 << 30
			cfg.Limits.StreamWindow = 16 << 10
		}
	}
	c.build("m-r", "h-r", "r-d")
	c.waitRoute("m", "d", 2)
	c.waitRoute("h", "d", 2)
	h, m, d := c.nodes["h"], c.nodes["m"], c.nodes["d"]

	bulk, err := d.Listen("bulk")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			conn, err := bulk.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 64<<10)
				for {
					if _, err := conn.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()

	if el, err := trickleEcho(h, 1<<20, 30*time.Second); err != nil {
		t.Fatalf("honest 1 MiB echo before the attack: %v", err)
	} else {
		t.Logf("honest 1 MiB echo before the attack: %v", el)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var opened, ended atomic.Int64
	var lastErr error
	for i := range circuits {
		conn, err := open(m, i)
		if err != nil {
			lastErr = err
			continue // a refusal only weakens the attack
		}
		opened.Add(1)
		context.AfterFunc(ctx, func() { conn.Close() })
		wg.Go(func() {
			buf := make([]byte, readChunk)
			tk := time.NewTicker(readEvery)
			defer tk.Stop()
			for {
				if _, err := io.ReadFull(conn, buf); err != nil {
					if ctx.Err() == nil {
						ended.Add(1)
					}
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-tk.C:
				}
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	if opened.Load() < circuits/2 {
		t.Fatalf("only %d of %d attacking circuits opened (last error: %v)", opened.Load(), circuits, lastErr)
	}

	// Let the windows fill (each stream's takes about 20 s to drain at the
	// attacker's rate), then measure h's echoes while they stay full.
	time.Sleep(8 * time.Second)
	res := trickled{size: 1 << 20, limit: 10 * time.Second}
	if raceEnabled { // QUIC about tenfold slower: the echo's bytes alone take seconds
		res.size, res.limit = 256<<10, 30*time.Second
	}
	var took []time.Duration
	for start := time.Now(); time.Since(start) < 15*time.Second; res.rounds++ {
		el, err := trickleEcho(h, res.size, res.limit)
		if err != nil {
			res.fails++
			t.Logf("honest %d-byte echo under the attack: %v", res.size, err)
			continue
		}
		took = append(took, el)
	}
	slices.Sort(took)
	var median, worst time.Duration
	if len(took) > 0 {
		median, worst = took[len(took)/2], took[len(took)-1]
	}
	res.opened, res.ended = opened.Load(), ended.Load()
	t.Logf("under the attack: %d honest %d-byte echoes, %d failed, median %v, slowest %v; %d of m's %d circuits reset, r's stalled resets %d",
		res.rounds, res.size, res.fails, median.Round(time.Millisecond), worst.Round(time.Millisecond), res.ended, res.opened, c.nodes["r"].transport.(*links.QUICTransport).StalledStreams())
	return res
}

// trickleEcho moves n bytes through an echo circuit of h to d and back,
// and returns how long it took.
func trickleEcho(h *Node, n int, limit time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	conn, err := h.Dial(ctx, "d", EchoService)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	payload := bytes.Repeat([]byte("honest bytes...."), n/16)
	go func() {
		conn.Write(payload)
		conn.CloseWrite()
	}()
	got, err := io.ReadAll(conn)
	if err == nil && len(got) != n {
		err = io.ErrUnexpectedEOF
	}
	return time.Since(start), err
}
