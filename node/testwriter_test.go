package node

import (
	"strings"
	"testing"
	"time"
)

// A node's log line written while its test ends, or after (memberlist's
// probe in flight outlives Close), is kept, on stderr once the test's
// cleanups ran, and is no t.Log after the test completed: under the
// race detector that is a data race on the test's state, which failed
// `go test -race -v ./node/` though every test passed.
func TestVerboseLogOutlivingItsTestIsKept(t *testing.T) {
	var after syncBuf
	stop, stopped := make(chan struct{}), make(chan struct{})
	t.Run("ending", func(t *testing.T) {
		w := newTestWriter(t)
		w.after = &after
		l := w.logger()
		go func() {
			defer close(stopped)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				l.Info("probe", "n", i)
			}
		}()
		time.Sleep(10 * time.Millisecond) // the goroutine logs while the test ends
	})
	deadline := time.Now().Add(patience) // guards against a hang only
	for strings.Count(after.String(), "\n") < 100 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	<-stopped
	out := after.String()
	if n := strings.Count(out, "\n"); n < 100 {
		t.Fatalf("%d lines logged after the test ended reached stderr, want 100 or more:\n%s", n, out)
	}
	if !strings.HasPrefix(out, t.Name()+"/ending (after it ended): ") || !strings.Contains(out, "msg=probe") {
		t.Errorf("lines after the test ended, not marked with its name: %.300s", out)
	}
}
