package main

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

// TestAttackForwardToANodeThatNeverAcknowledges: a member d, with a valid
// certificate, serves a service that takes every circuit and reads
// nothing, and its node keeps what arrives without bound (as one that
// withholds its acknowledgements would); a local program opens 100
// connections to a's --forward to that service and writes into each as
// fast as it can. A source keeps what the destination did not
// acknowledge, up to a window (4 MiB) per circuit, and nothing bounded
// the circuits a node dials together: a held about 7 MiB per connection
// (2.5 GiB resident with 370 of them, 500 to 540 MiB with these 100). Now
// the circuits a node dials share a budget by destination
// (Limits.ResumeBufferPerSource, 64 MiB), and Writes beyond it wait for
// room: a stays far below one window per connection, says once that
// writes to d wait, resets no connection, and every connection moves on
// once d reads.
func TestAttackForwardToANodeThatNeverAcknowledges(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: fills the buffers of 100 forwarded connections")
	}
	const conns = 100
	const window = 4 << 20 // circuit.DefaultResumeWindow
	l := newLab(t, "e2e")
	a := l.start("a", "", "--forward", "127.0.0.1:0=d/sink")
	fwd := a.forwardAddr(t, "d/sink")

	// d runs in this process: a member's own build of the node, here
	// one whose budget for what its sources send is larger than any
	// window it grants.
	ddir := filepath.Join(l.dir, "d")
	l.cli("cert", "issue", "d", "--ca-dir", l.ca, "--out", ddir)
	cfg, err := parseRun(t, "--data-dir", ddir, "--listen", "127.0.0.1:0", "--link", a.addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg.node.Logger = slog.New(slog.DiscardHandler)
	cfg.node.Limits.ResumeBuffer = 8 << 30
	cfg.node.Limits.ResumeBufferPerSource = 8 << 30
	d, err := node.New(cfg.node)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ln, err := d.Listen("sink")
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	startReading := sync.OnceFunc(func() { close(read) })
	var accepted atomic.Int64
	var served sync.WaitGroup
	defer served.Wait()
	defer ln.Close()
	defer startReading()
	served.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			served.Go(func() {
				defer c.Close()
				<-read
				io.Copy(io.Discard, c)
			})
		}
	})
	a.waitRoute(t, "d", anyRoute)

	written := make([]atomic.Int64, conns)
	var failed atomic.Int64
	var clients sync.WaitGroup
	defer clients.Wait()
	chunk := make([]byte, 64<<10)
	for i := range conns {
		c, err := net.Dial("tcp", fwd)
		if err != nil {
			t.Fatalf("connection %d to the forward: %v", i, err)
		}
		defer c.Close()
		clients.Go(func() {
			for {
				n, err := c.Write(chunk)
				written[i].Add(int64(n))
				if err != nil {
					if !errors.Is(err, net.ErrClosed) { // not closed by the test
						failed.Add(1)
						t.Logf("connection %d failed after %d bytes: %v", i, written[i].Load(), err)
					}
					return
				}
			}
		})
	}
	total := func() (sum int64) {
		for i := range written {
			sum += written[i].Load()
		}
		return sum
	}
	// The clients stop when every buffer on the way is full: nothing
	// more written for 3 s.
	last, since := int64(-1), time.Now()
	waitUntil(t, "the clients' writes to stall", func() bool {
		if w := total(); w != last {
			last, since = w, time.Now()
		}
		return time.Since(since) > 3*time.Second
	})
	rss := residentBytes(a.cmd.Process.Pid)
	t.Logf("%d connections wrote %d MiB (kernel buffers included), d took %d circuits; a: %s",
		conns, last>>20, accepted.Load(), procState(a.cmd.Process.Pid))
	if got := accepted.Load(); got != conns {
		t.Errorf("d took %d circuits, want %d", got, conns)
	}
	if n := failed.Load(); n > 0 {
		t.Errorf("%d connections failed: Writes beyond the budget should wait", n)
	}
	// A window per connection is 400 MiB; the share is 64 MiB, and the
	// daemon itself, its connections' copy buffers and the garbage not
	// yet collected take a few tens more.
	if limit := int64(conns * window * 3 / 4); rss > limit {
		t.Fatalf("a holds %d MiB resident with %d connections to a destination that acknowledges nothing, want at most %d MiB",
			rss>>20, conns, limit>>20)
	}
	a.logged(t, "writes to a destination wait: the circuits dialled to it hold their share of the budget unacknowledged", "peer")

	// d reads at last: every connection moves on, none starved.
	stalled := make([]int64, conns)
	for i := range written {
		stalled[i] = written[i].Load()
	}
	startReading()
	waitUntil(t, "every connection to write another MiB", func() bool {
		for i := range written {
			if written[i].Load() < stalled[i]+1<<20 {
				return false
			}
		}
		return true
	})
	if n := failed.Load(); n > 0 {
		t.Errorf("%d connections failed", n)
	}
}
