package node

import (
	"cmp"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// withholdEnd is a relay's stream from a source that, once cut, passes
// on nothing more the source sends (its acknowledgements, its end), and
// takes what the relay writes to it as written.
type withholdEnd struct {
	links.Stream
	cut  atomic.Bool
	once sync.Once
	done chan struct{}
}

func (w *withholdEnd) Read(b []byte) (int, error) {
	n, err := w.Stream.Read(b)
	if w.cut.Load() || err != nil {
		<-w.done
		return 0, io.EOF
	}
	return n, err
}

func (w *withholdEnd) Write(b []byte) (int, error) {
	w.Stream.Write(b)
	return len(b), nil
}

func (w *withholdEnd) end()              { w.once.Do(func() { close(w.done) }) }
func (w *withholdEnd) Close() error      { w.end(); return w.Stream.Close() }
func (w *withholdEnd) Reset(code uint64) { w.end(); w.Stream.Reset(code) }

// TestAttackWithheldAcksFillResumeTable: m1 and m2, members with valid
// certificates, open resumable circuits through x (a relay they run) to a
// service of d that answers each and closes it. Once d's service read the
// request, x passes on nothing more from m1 and m2: d never reads the
// acknowledgement of its end, nor their end, and keeps each closed
// circuit (its tail unacknowledged) until ResumeTimeout. Then x resets
// every circuit it carries, so that d's closed circuits wait for a
// resume, and m1 and m2 open circuits again. Then h opens two circuits to
// d through r, which r resets.
//
// The attack was feared to fill d's table of resumable circuits (sized
// exactly to d's limits here), a closed circuit having released its
// place under the limits. It does not: a closed circuit keeps its place
// while its path is open (each attacker gets d's MaxCircuitsPerSource of
// them, the rest are refused as overloaded), and once its path failed it
// counts as waiting for a resume, so d's table never holds more than its
// limits admit. But the closed circuits waiting for a resume took the
// places under MaxParked that h's circuits needed: before, the source
// holding the most waiting circuits lost its oldest, which was h once
// both its circuits waited, and one of h's resumes was refused. Now a
// circuit d's application closed goes first.
func TestAttackWithheldAcksFillResumeTable(t *testing.T) {
	const (
		perSource = 4  // d's MaxCircuitsPerSource
		parked    = 2  // d's MaxParkedPerSource: a source's share of d's table is 6
		total     = 10 // d's MaxCircuits, MaxParked 3: d's table holds 13

		churn = 3 * (perSource + parked)
	)
	c := newCluster(t, true)
	relayed := make(chan *withholdEnd, 4*churn)
	c.tweak = func(cfg *Config) {
		cfg.ResumeTimeout = patience
		switch cfg.Name {
		case "x":
			cfg.hooks = &hooks{relay: func(in, out links.Stream) (links.Stream, links.Stream) {
				w := &withholdEnd{Stream: in, done: make(chan struct{})}
				relayed <- w
				return w, out
			}}
		case "d":
			cfg.Limits.MaxCircuitsPerSource = perSource
			cfg.Limits.MaxParkedPerSource = parked
			cfg.Limits.MaxCircuits = total
			cfg.Limits.MaxParked = parked + 1
			cfg.hooks = &hooks{exactResumeTable: true}
		}
	}
	c.build("h-r", "r-d", "m1-x", "m2-x", "x-d")
	for _, from := range []string{"h", "m1", "m2"} {
		c.waitRoute(from, "d", 2)
	}
	d := c.nodes["d"]
	closed := make(chan struct{}, 4*churn)
	serve(t, d, "bye", func(conn io.ReadWriteCloser) {
		defer func() { closed <- struct{}{} }()
		var b [1]byte
		if _, err := io.ReadFull(conn, b[:]); err != nil {
			return
		}
		// x relayed this circuit, and those d refused before it (one at
		// a time): cut them all.
		for cut := false; ; {
			select {
			case w := <-relayed:
				w.cut.Store(true)
				cut = true
				continue
			default:
			}
			if !cut {
				t.Errorf("a circuit to bye that x did not relay")
			}
			break
		}
		conn.Write([]byte("bye"))
		conn.Close()
	})
	var held []net.Conn // the attackers' circuits, open and never read
	defer func() {
		for _, cn := range held {
			cn.Close()
		}
	}()
	// attack has each attacker open churn circuits to bye, one at a time,
	// and returns how many d accepted and the first refusal.
	attack := func() (map[string]int, error) {
		opened := map[string]int{}
		var first error
		for _, name := range []string{"m1", "m2"} {
			for range churn {
				cn, err := c.nodes[name].Dial(ctxT(t, patience), "d", "bye")
				if err == nil {
					_, err = cn.Write([]byte("x"))
				}
				if err != nil {
					if !errors.Is(err, circuit.ErrOverloaded) {
						t.Fatalf("%s's circuit to bye: %v, want accepted or refused as overloaded", name, err)
					}
					first = cmp.Or(first, err)
					if cn != nil {
						cn.Close()
					}
					continue
				}
				held = append(held, cn)
				opened[name]++
				select {
				case <-closed:
				case <-time.After(patience):
					t.Fatalf("d's service did not close %s's circuit", name)
				}
			}
		}
		return opened, first
	}
	opened, refusal := attack()
	t.Logf("paths open: d accepted %v of the attackers' circuits and closed them (first refusal: %v); d's table holds %d", opened, refusal, d.resumeTable.Len())
	for name, n := range opened {
		if n > perSource {
			t.Errorf("d accepted %d circuits of %s while it held %s's closed ones, want at most MaxCircuitsPerSource (%d): a closed circuit must keep its place", n, name, name, perSource)
		}
	}
	// d's closed circuits lose their paths and wait for a resume that
	// never comes; their places go back.
	c.nodes["x"].circuits.resetAll()
	opened, refusal = attack()
	t.Logf("after x reset them: d accepted %v more (first refusal: %v); d's table holds %d", opened, refusal, d.resumeTable.Len())

	// h opens two circuits to d through r, and r resets them: both wait
	// for their resume at d, beside the attackers' closed ones.
	var conns [2]net.Conn
	for i := range conns {
		conn, err := c.nodes["h"].Dial(ctxT(t, patience), "d", EchoService)
		if err != nil {
			t.Fatalf("h's circuit %d to d after the attack: %v", i, err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(patience))
		conns[i] = conn
	}
	echo := func(conn net.Conn) error {
		if _, err := conn.Write([]byte("x")); err != nil {
			return err
		}
		_, err := io.ReadFull(conn, make([]byte, 1))
		return err
	}
	for i, conn := range conns {
		if err := echo(conn); err != nil {
			t.Fatalf("h's circuit %d, first echo: %v", i, err)
		}
	}
	withH := d.resumeTable.Len()
	c.nodes["r"].circuits.resetAll()
	var errs [2]error
	for i, conn := range conns {
		errs[i] = echo(conn)
	}
	t.Logf("d's table holds %d with h's circuits; h's echoes after r reset its circuits: %v", withH, errs)
	for i, err := range errs {
		if err != nil {
			t.Errorf("h's circuit %d, reset by r after the attack: %v, want it resumed", i, err)
		} else if conns[i].(*resumableConn).Resumes() == 0 {
			t.Errorf("h's circuit %d carried its echo after r reset it without resuming", i)
		}
	}
}
