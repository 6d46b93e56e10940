package node

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// TestAttackInfoHangsPastItsCancel: m, a member with a valid certificate
// answering its own _info, sends the first bytes of an answer and then
// nothing, holding the circuit open. a asks m's Info with a context that
// has no deadline and cancels it once m holds the circuit, as an
// application asking on behalf of a request its client gave up on does.
// Before, Info applied ctx to the circuit only through ctx.Deadline, and
// a cancelled context has none: it stayed blocked in its read, holding
// its goroutine and a circuit, for as long as m liked. Now it returns an
// error wrapping context.Canceled within seconds, and its circuit closes.
func TestAttackInfoHangsPastItsCancel(t *testing.T) {
	a, m, _ := infoLiar(t)
	lis, err := m.Listen(InfoService)
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := lis.Accept()
		if err != nil {
			return
		}
		c.Write([]byte(`{"name":"m",`))
		held <- c
	}()
	t.Cleanup(func() {
		lis.Close()
		wg.Wait()
		select {
		case c := <-held:
			c.Close()
		default:
		}
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := a.Info(ctx, "m")
		done <- err
	}()
	select {
	case c := <-held:
		held <- c
	case err := <-done:
		t.Fatalf("a's Info of m returned before m held its circuit: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("m did not get a's info circuit within 30 s")
	}
	wantEndsOnCancel(t, "a's Info of m", cancel, done)
	waitFor(t, "a's info circuit to close", 30*time.Second, func() bool {
		return metricValue(t, a, "circuitmesh_circuits_active", "role", "dial") == 0
	})
}
