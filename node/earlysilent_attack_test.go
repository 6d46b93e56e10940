package node

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestEarlyResumableOpenNotHeldBySilentRelay: on a diamond a–{b,c}–d where routing
// prefers b, b forwards a's opens to d and passes nothing d sends back
// (no result header, no handshake reply, no reset). a opens a resumable
// circuit early (DialOptions{Early: true}, what Forward and the admin
// API's dial do), writes five bytes and reads their echo with no
// deadline. The bytes wait for an acknowledgement that never comes: the
// circuit gives up on b once the path stayed silent for the silence
// limit, the time to drain what was sent and the slack of an
// unconfirmed open (5 s), and resumes through c, which d refuses when it
// never took the circuit (its handshake never completed): the Read ends
// with the echo or an error wrapping circuit.ErrResumeRefused or
// circuit.ErrNoProgress, after about 15 s. It used to stay suspended on
// b, the Read blocked, for as long as b liked. After the handshake, the
// same relay behaviour moves the circuit to c within seconds
// (TestResumeAroundRelayThatStopsForwarding).
func TestEarlyResumableOpenNotHeldBySilentRelay(t *testing.T) {
	t.Parallel()
	c := newCluster(t, true)
	buildDiamondWith(t, c, func(cfg *Config) {
		if cfg.Name == "b" {
			cfg.hooks = &hooks{relay: func(in, out links.Stream) (links.Stream, links.Stream) {
				return silentStream{in}, out
			}}
		}
	})
	a := c.nodes["a"]
	conn, err := a.DialWith(ctxT(t, patience), "d", EchoService, DialOptions{Early: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, ok := conn.(*resumableConn); !ok {
		t.Fatalf("dial returned %T, want a resumable circuit", conn)
	}
	start := time.Now()
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var b [5]byte
		_, err := io.ReadFull(conn, b[:])
		done <- err
	}()
	const give = 45 * time.Second // progress timeout 2 s, resume timeout 30 s
	select {
	case err := <-done:
		t.Logf("read of the echo ended after %v: %v (path %v)", time.Since(start).Round(time.Millisecond), err, conn.Path())
		if err != nil && !errors.Is(err, circuit.ErrResumeRefused) && !errors.Is(err, circuit.ErrNoProgress) {
			t.Errorf("read of the echo: %v, want the echo or an error wrapping ErrResumeRefused or ErrNoProgress", err)
		}
	case <-time.After(give):
		t.Fatalf("read of the echo still blocked after %v, the circuit held at its open by b (path %v)", time.Since(start).Round(time.Millisecond), conn.Path())
	}
}
