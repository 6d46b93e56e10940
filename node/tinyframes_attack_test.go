package node

import (
	"reflect"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/circuitmesh/circuitmesh/links"
)

// circuitQUICStream is the QUIC stream beneath a circuit, for writing to it
// around the circuit's record layer as a malicious peer would.
func circuitQUICStream(t *testing.T, c Conn) links.Stream {
	tc, ok := c.(*trackedConn)
	if !ok {
		t.Fatalf("circuit of type %T", c)
	}
	v := reflect.ValueOf(tc.Conn).Elem().FieldByName("s")
	return *(*links.Stream)(unsafe.Pointer(v.UnsafeAddr()))
}

func heapLive() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestAttackTinyStreamFramesHoldMemory: m, a peer with a valid certificate,
// opens circuits to d's echo service, stops reading them so that the echo
// stops reading too, then fills d's stream windows one byte per STREAM
// frame. quic-go used to keep one frame-sorter entry per frame (a map slot,
// the frame, its data, a callback): 120-165 bytes of heap per byte of
// window, gigabytes per link at the default 32 MiB link window. The patched
// quic-go (internal/quic-go) copies small frames into merged buffers, so the
// unread bytes cost about what they are.
func TestAttackTinyStreamFramesHoldMemory(t *testing.T) {
	const circuits = 24
	per := 16 << 10 // bytes per circuit, within d's stream window
	if testing.Short() {
		per = 8 << 10
	}
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "m" {
			// m's own windows are small, so that d's echo soon blocks
			// writing back and stops reading.
			cfg.Limits.StreamWindow = 16 << 10
			cfg.Limits.ReaderStall = time.Hour
		}
	}
	c.build("m-d")
	c.waitRoute("m", "d", 1)
	m := c.nodes["m"]
	var streams []links.Stream
	for i := range circuits {
		cn, err := m.DialWith(ctxT(t, patience), "d", EchoService, DialOptions{NoResume: true})
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		// Enough real records that the echo blocks writing them back.
		cn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		cn.Write(make([]byte, 96<<10))
		cn.SetWriteDeadline(time.Time{})
		streams = append(streams, circuitQUICStream(t, cn))
	}
	time.Sleep(time.Second) // the echoes block
	before := heapLive()
	b := []byte{'x'}
	wrote := 0
	start := time.Now()
	for i := 0; i < per; i++ {
		for _, s := range streams {
			s.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := s.Write(b); err != nil {
				t.Fatalf("write after %d bytes: %v", wrote, err)
			}
			wrote++
		}
		// Let the bytes leave before the next ones are written, each in a
		// STREAM frame of its own.
		time.Sleep(100 * time.Microsecond)
	}
	time.Sleep(time.Second) // the last bytes arrive and are acknowledged
	after := heapLive()
	perByte := (float64(after) - float64(before)) / float64(wrote)
	t.Logf("%d bytes in 1-byte writes over %d circuits in %v: live heap %d -> %d KiB, %.1f bytes of heap per byte of window",
		wrote, circuits, time.Since(start).Round(time.Millisecond), before>>10, after>>10, perByte)
	// Before the patch: over 150. After: 1.3, the rest of the process
	// (both nodes) growing meanwhile included, which on a loaded machine
	// with -short's fewer bytes made it 8.0 once: the bound is a tenth of
	// the unpatched cost.
	if perByte > 16 {
		t.Errorf("unread tiny STREAM frames cost %.1f bytes of heap per byte of window, want at most 16", perByte)
	}
}
