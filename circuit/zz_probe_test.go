package circuit

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func probeWrite(t *testing.T, name string, w func([]byte) (int, error)) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := w([]byte("x")); err != nil {
			var re *ResetError
			t.Logf("%s: %v (%T) ErrClosed=%v ResetError=%v", name, err, err, errors.Is(err, net.ErrClosed), errors.As(err, &re))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%s: no error", name)
}

func TestZZProbe(t *testing.T) {
	for _, relays := range []int{0, 1} {
		c := mustConnect(t, newPath(t, relays, nil), basicOpen(), false)
		c.dest.Close()
		_, err := io.ReadAll(c.caller)
		t.Logf("plain read: %v", err)
		probeWrite(t, "plain", c.caller.Write)
		c.stop()
	}
	for _, sealed := range []bool{false, true} {
		var c *circuit
		if sealed {
			c = mustConnect(t, newPath(t, 0, nil), basicOpen(), false)
		} else {
			c = mustConnect(t, newPath(t, 0, nil), basicOpen(), false)
		}
		_ = c
	}
	src, dst := newResumeRig(t).defaultPair(t)
	dst.Close()
	_, err := io.ReadAll(src)
	t.Logf("resumable read: %v", err)
	probeWrite(t, "resumable", src.Write)
}
