package node

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/prometheus/client_golang/prometheus"
)

// A destination that reads nothing, and keeps every window it grants,
// has s's circuits hold what they wrote unacknowledged: their retransmit
// buffers stay within s's share for d less a sixteenth (and a record's
// buffer a circuit), the Writes beyond wait instead of failing, and
// when d reads every circuit delivers all it wrote and the
// account goes back to zero. (Before, each circuit kept its window: the
// cmd test TestAttackForwardToANodeThatNeverAcknowledges has the
// figures.)
func TestResumeDialBudgetHoldsWritesBack(t *testing.T) {
	const circuits, each = 6, 6 << 20 // 36 MiB written, four times the share
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		switch cfg.Name {
		case "s":
			cfg.Limits.ResumeBuffer = 4 * MinResumeBuffer
			cfg.Limits.ResumeBufferPerSource = MinResumeBuffer
		case "d":
			cfg.Limits.ResumeBuffer = 1 << 30
			cfg.Limits.ResumeBufferPerSource = 1 << 30
		}
	}
	c.build("s-d")
	c.waitRoute("s", "d", 1)
	s, d := c.nodes["s"], c.nodes["d"]
	read := make(chan struct{})
	var got sync.Map // circuit number → bytes d read
	serve(t, d, "hold", func(conn io.ReadWriteCloser) {
		var id [1]byte
		if _, err := io.ReadFull(conn, id[:]); err != nil {
			return
		}
		<-read
		n, _ := io.Copy(io.Discard, conn)
		got.Store(int(id[0]), n+1)
	})
	peak := watchBudget(s.dbudget)

	var wg sync.WaitGroup
	for i := range circuits {
		wg.Go(func() {
			conn, err := s.Dial(ctxT(t, patience), "d", "hold")
			if err != nil {
				t.Errorf("dial %d: %v", i, err)
				return
			}
			defer conn.Close()
			conn.SetWriteDeadline(time.Now().Add(2 * time.Minute))
			buf := make([]byte, each)
			buf[0] = byte(i)
			if _, err := conn.Write(buf); err != nil {
				t.Errorf("circuit %d: %v", i, err)
			}
		})
	}
	waitFor(t, "s's circuits to wait for room", patience, func() bool { return s.dbudget.totals().waiting > 0 })
	close(read)
	wg.Wait()
	nodePeak, srcPeak := peak.end()
	limit := sendCap(MinResumeBuffer) + circuits*circuit.MinSendBuffer
	t.Logf("s's dialled buffers: peak %d KiB, for d %d KiB (limit %d KiB; %d KiB written)", nodePeak>>10, srcPeak>>10, limit>>10, circuits*each>>10)
	if srcPeak > limit {
		t.Errorf("s's circuits to d held %d bytes, want at most %d", srcPeak, limit)
	}
	waitFor(t, "d to read every circuit to its end", patience, func() bool {
		n := 0
		got.Range(func(_, v any) bool {
			if v.(int64) == each {
				n++
			}
			return true
		})
		return n == circuits
	})
	waitFor(t, "s's account to return to zero", patience, func() bool {
		u := s.dbudget.usage()
		return u.bytes == 0 && u.circuits == 0
	})
}

// A circuit dialled to d whose Writes begin to wait for room says so in
// the log (logSendWait). While that line is being written (a log sink
// that blocks, as a full pipe to journald does), the circuits dialled to
// other destinations go on: the budget's lock is not held across it.
// Before, a circuit to e asking for room waited for d's log line.
func TestDialBudgetWaitLogHoldsNoLock(t *testing.T) {
	cfg := Config{Limits: Limits{ResumeBuffer: 4 * MinResumeBuffer, ResumeBufferPerSource: MinResumeBuffer}}
	cfg.setDefaults()
	b := newDialBudget(cfg.Limits, prometheus.NewRegistry())
	logging, release := make(chan struct{}), make(chan struct{})
	b.waitLog = func(string, int, int, int) {
		close(logging)
		<-release
	}
	defer close(release)
	d, e := b.open("d"), b.open("e")
	if !d.GrowSend(sendCap(MinResumeBuffer), false) {
		t.Fatal("d's first retransmit buffer, within its share, refused")
	}
	go d.GrowSend(1<<20, false) // beyond d's share: waits, and logs it
	<-logging
	granted := make(chan bool, 1)
	go func() { granted <- e.GrowSend(4096, false) }()
	select {
	case ok := <-granted:
		if !ok {
			t.Fatal("e's first 4 KiB refused")
		}
	case <-time.After(patience):
		t.Fatalf("a circuit to e waited %v for the log line of a circuit to d", patience)
	}
}
