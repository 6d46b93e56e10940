package circuit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// lostPath reads its bytes, then fails as a path whose link died (a
// resumable failure) or ends cleanly; writes are discarded.
type lostPath struct {
	r    *bytes.Reader
	lost bool
}

func (p *lostPath) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err == io.EOF && p.lost {
		err = &ResetError{Code: CloseCode(CloseLinkLost), Remote: true}
	}
	return n, err
}
func (p *lostPath) Write(b []byte) (int, error)     { return len(b), nil }
func (p *lostPath) Close() error                    { return nil }
func (p *lostPath) Reset(uint64)                    {}
func (p *lostPath) SetReadDeadline(time.Time) error { return nil }

// sourceData is the data a source may deliver of what the destination
// sent on one path, b: the data frames' bytes in order (a truncated
// frame's too), up to the first frame the source must refuse, and
// whether a fin came.
func sourceData(b []byte) (data []byte, fin bool) {
	for len(b) > 0 {
		switch b[0] {
		case framePing, framePong:
			b = b[1:]
		case frameAck:
			if len(b) < 9 {
				return data, false
			}
			b = b[9:]
		case frameData:
			if len(b) < 3 {
				return data, false
			}
			n := int(binary.BigEndian.Uint16(b[1:3]))
			if n == 0 {
				return data, false
			}
			data = append(data, b[3:3+min(n, len(b)-3)]...)
			if len(b) < 3+n {
				return data, false
			}
			b = b[3+n:]
		case frameFin:
			return data, true
		default:
			return data, false
		}
	}
	return data, false
}

// FuzzResumableSourceFrames hands a resumable circuit's source what a
// destination (or a relay that forges for it) sends: first path, then,
// when that path's link died, the answer to the resume and what follows
// on the new path. The circuit ends without a panic or a hang, its Reads
// return no byte the data frames did not carry, in their order, with
// none lost before a byte after it, and it fails only with the package's
// errors.
func FuzzResumableSourceFrames(f *testing.F) {
	resumed := func(off uint64) []byte { return binary.BigEndian.AppendUint64([]byte{frameResumed}, off) }
	f.Add([]byte{frameData, 0, 3, 'a', 'b', 'c', frameFin}, false, []byte(nil))
	f.Add(append([]byte{framePing, frameAck}, make([]byte, 8)...), false, []byte(nil))
	f.Add([]byte{frameData, 0, 2, 'a', 'b'}, true, append(resumed(0), frameData, 0, 1, 'c', frameFin))
	f.Add([]byte{frameData, 0, 5, 'a', 'b'}, true, append(resumed(2), frameData, 0, 1, 'c', frameFin))
	f.Add([]byte{frameData, 0, 1, 'a'}, true, append(resumed(99), frameFin))
	f.Add([]byte{frameHello, 1}, false, []byte(nil))
	f.Add([]byte{frameFin, frameData, 0, 1, 'x'}, false, []byte(nil))
	f.Add(append([]byte{frameAck}, 0xff, 0, 0, 0, 0, 0, 0, 0), true, resumed(5))
	f.Fuzz(func(t *testing.T, first []byte, lost bool, second []byte) {
		var mu sync.Mutex
		redials := 0
		cfg := ResumeConfig{
			Window: 1 << 10, Timeout: 50 * time.Millisecond, ProgressTimeout: time.Second,
			Redial: func(ctx context.Context) (Path, error) {
				mu.Lock()
				defer mu.Unlock()
				if redials++; redials > 1 {
					return nil, &ResetError{Code: CloseCode(CloseLinkLost), Remote: true}
				}
				return &lostPath{r: bytes.NewReader(second)}, nil
			},
		}
		r, err := NewResumableSource(&lostPath{r: bytes.NewReader(first), lost: lost}, Addr{"s", "echo"}, Addr{"d", "echo"}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Write([]byte("hello")); err != nil && !circuitError(err) {
			t.Fatalf("write: %v", err)
		}
		_ = r.SetReadDeadline(time.Now().Add(10 * time.Second))
		var got []byte
		buf := make([]byte, 64)
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("the circuit neither ended nor delivered within 10s (read %d bytes)", len(got))
				}
				if err != io.EOF && !circuitError(err) {
					t.Fatalf("read: %v is none of the package's errors", err)
				}
				break
			}
		}
		r.Reset(CloseCancelled)
		r.Wait()
		want, fin := sourceData(first)
		if lost && !fin && len(second) >= 9 {
			// The new path goes on from what the source received.
			more, _ := sourceData(second[9:])
			want = append(want, more...)
		}
		if !bytes.HasPrefix(want, got) {
			t.Fatalf("read %q, not a prefix of the %q sent", got, want)
		}
	})
}

// circuitError reports whether err is one a circuit's Read or Write may
// fail with: one of the package's errors, or its own close.
func circuitError(err error) bool {
	var re *ResetError
	for _, e := range []error{ErrIntegrity, ErrResumeTimeout, ErrResumeRefused, ErrNoProgress, ErrResumeLoop, ErrBufferBudget, ErrLinkLost, net.ErrClosed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return errors.As(err, &re)
}
