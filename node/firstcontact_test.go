package node

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// slowPath holds, at a relay, a full handshake's first message for
// first and its third for third after the reply passed: a path (or a
// source) slow enough that the two together outlast the destination's
// HeaderTimeout, while each is within it.
type slowPath struct {
	first, third time.Duration
	replied      chan struct{} // closed once the reply passed
	once         sync.Once
	at           time.Time // when the reply passed
}

type slowIn struct {
	links.Stream
	p     *slowPath
	reads int
}

func (s *slowIn) Read(b []byte) (int, error) {
	n, err := s.Stream.Read(b)
	if s.reads++; s.reads == 1 {
		time.Sleep(s.p.first)
		return n, err
	}
	select {
	case <-s.p.replied: // the third message
		time.Sleep(time.Until(s.p.at.Add(s.p.third)))
	default:
	}
	return n, err
}

type slowOut struct {
	links.Stream
	p *slowPath
}

func (s *slowOut) Read(b []byte) (int, error) {
	n, err := s.Stream.Read(b)
	if n > 0 {
		s.p.once.Do(func() {
			s.p.at = time.Now()
			close(s.p.replied)
		})
	}
	return n, err
}

// slowFirstContact is a line a–r–d, d's HeaderTimeout 6 s and a service
// "slowecho" on d, whose relay r passes the first circuit it relays
// through slow and counts the circuits it relays.
func slowFirstContact(t *testing.T, slow *slowPath) (*cluster, *atomic.Int32) {
	t.Helper()
	relayed := new(atomic.Int32)
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.HeaderTimeout = 6 * time.Second
		cfg.DialTimeout = time.Minute
		if cfg.Name == "r" {
			cfg.hooks = &hooks{relay: func(in, out links.Stream) (links.Stream, links.Stream) {
				if relayed.Add(1) > 1 {
					return in, out
				}
				return &slowIn{Stream: in, p: slow}, &slowOut{Stream: out, p: slow}
			}}
		}
	}
	c.build("a-r", "r-d")
	c.waitNextHop("a", "d", "r")
	serve(t, c.nodes["d"], "slowecho", echoHandler)
	return c, relayed
}

// TestFirstContactThroughASlowPath: a's first circuit to d, a full
// handshake through r, whose first message reaches d 4 s after d started
// reading it and whose third message reaches d 4 s after d's reply, with
// d's HeaderTimeout 6 s, is accepted and carries its bytes: the third
// message has HeaderTimeout of its own from the reply. Before, both had
// to arrive within HeaderTimeout of the first's read starting, and d
// reset the circuit ("internal error").
func TestFirstContactThroughASlowPath(t *testing.T) {
	t.Parallel()
	slow := &slowPath{first: 4 * time.Second, third: 4 * time.Second, replied: make(chan struct{})}
	c, relayed := slowFirstContact(t, slow)
	conn, err := c.nodes["a"].DialWith(ctxT(t, time.Minute), "d", "slowecho", DialOptions{NoResume: true})
	if err != nil {
		t.Fatalf("a's first circuit to d: %v", err)
	}
	defer conn.Close()
	echoOnce(t, conn, "first contact")
	if n := relayed.Load(); n != 1 {
		t.Fatalf("r relayed %d circuits, want the one", n)
	}
}

// TestFirstContactTooSlowThenOneMessage: a's first circuit to d, whose
// third message reaches d 8 s after d's reply with d's HeaderTimeout 6 s,
// is dialled, then reset by d: a's first Read fails with "internal
// error", not "protocol error", and a does not open it again by itself.
// a learned d's key record from the reply, so the next Dial takes the
// one-message handshake, which has no third message, and carries its
// bytes.
func TestFirstContactTooSlowThenOneMessage(t *testing.T) {
	t.Parallel()
	slow := &slowPath{third: 8 * time.Second, replied: make(chan struct{})}
	c, relayed := slowFirstContact(t, slow)
	a := c.nodes["a"]
	conn, err := a.DialWith(ctxT(t, time.Minute), "d", "slowecho", DialOptions{NoResume: true})
	if err != nil {
		t.Fatalf("a's first circuit to d: %v", err)
	}
	conn.SetDeadline(time.Now().Add(time.Minute))
	_, err = conn.Read(make([]byte, 1))
	conn.Close()
	var re *circuit.ResetError
	if !errors.As(err, &re) || re.Code.Reason() != circuit.CloseInternal {
		t.Fatalf("a's first read: %v, want d's reset with internal error", err)
	}
	if _, ok := a.keyBook.LookupKey("d"); !ok {
		t.Fatal("a did not keep d's key record from the reply")
	}
	if n := relayed.Load(); n != 1 {
		t.Fatalf("r relayed %d circuits, want the one a dialled: a opened it again by itself", n)
	}
	conn, err = a.DialWith(ctxT(t, time.Minute), "d", "slowecho", DialOptions{NoResume: true})
	if err != nil {
		t.Fatalf("a's second circuit to d: %v", err)
	}
	defer conn.Close()
	echoOnce(t, conn, "second contact")
}
