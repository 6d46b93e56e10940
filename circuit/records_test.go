package circuit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/links"
)

// recordTap is a relay's pair of streams that notes the largest frame
// (u16 length, then that many bytes: a handshake message or a record)
// spliced each way: toward the destination ([0]) and, after the result
// header, toward the source ([1]).
type recordTap struct {
	mu  sync.Mutex
	max [2]int
}

func (t *recordTap) wrap(in, out links.Stream) (links.Stream, links.Stream) {
	return &tapFrames{Stream: in, t: t, dir: 1, head: true}, &tapFrames{Stream: out, t: t}
}

// largest is the largest frame seen each way.
func (t *recordTap) largest() [2]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.max
}

type tapFrames struct {
	links.Stream
	t    *recordTap
	dir  int
	head bool // the result header is still to skip
	pend []byte
}

func (f *tapFrames) Write(p []byte) (int, error) {
	f.t.mu.Lock()
	f.pend = append(f.pend, p...)
	for {
		if f.head {
			if len(f.pend) < prefixLen || len(f.pend) < prefixLen+int(binary.BigEndian.Uint16(f.pend[2:])) {
				break
			}
			f.pend, f.head = f.pend[prefixLen+int(binary.BigEndian.Uint16(f.pend[2:])):], false
		}
		if len(f.pend) < 2 || len(f.pend) < 2+int(binary.BigEndian.Uint16(f.pend)) {
			break
		}
		n := int(binary.BigEndian.Uint16(f.pend))
		f.t.max[f.dir] = max(f.t.max[f.dir], n)
		f.pend = f.pend[2+n:]
	}
	f.t.mu.Unlock()
	return f.Stream.Write(p)
}

// mixedKeys is newSealKeys with either end made to behave as nodes that
// predate large records; for mode "resumed", after an IK open that gave
// the source a session to resume.
func mixedKeys(t *testing.T, sSmall, dSmall bool, mode string) *sealKeys {
	k := newSealKeys(t)
	if sSmall {
		k.s.SmallRecordsOnly()
	}
	if dSmall {
		k.d.SmallRecordsOnly()
	}
	if mode == "resumed" {
		c, err := newPath(t, 0, nil).connectWith(basicOpen(), k.accept, k.dial(basicOpen(), false, false, false))
		if err != nil {
			t.Fatal(err)
		}
		c.stop()
	}
	return k
}

// checkRecordSizes fails unless the largest frames a relay saw each way
// are records larger than seal.MaxData exactly when both ends read them.
func checkRecordSizes(t *testing.T, seen [2]int, both bool) {
	t.Helper()
	for dir, n := range seen {
		if large := n > seal.MaxRecord-2; large != both || n == 0 {
			t.Errorf("direction %d: largest record %d bytes; want records beyond %d bytes: %t", dir, n, seal.MaxRecord-2, both)
		}
	}
}

// exchange sends data from a to b and then from b to a, each ending with
// CloseWrite, and fails unless each side read it all.
func exchange(t *testing.T, a, b io.ReadWriter, closeA, closeB func() error, data []byte) {
	t.Helper()
	for _, d := range []struct {
		from, to io.ReadWriter
		close    func() error
	}{{a, b, closeA}, {b, a, closeB}} {
		errc := make(chan error, 1)
		go func() {
			_, err := d.from.Write(data)
			if err == nil {
				err = d.close()
			}
			errc <- err
		}()
		got, err := io.ReadAll(d.to)
		if werr := <-errc; werr != nil {
			t.Fatalf("write: %v", werr)
		}
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %d bytes, %v; want the %d written", len(got), err, len(data))
		}
	}
}

// Ends of every version pairing interoperate, in every handshake mode,
// on plain and on resumable circuits: an end made SmallRecordsOnly
// behaves as the nodes that predate large records (it states nothing,
// and refuses records over seal.MaxData), and records larger than
// seal.MaxData cross the relay only between two ends that state they
// read them.
func TestSealedRecordSizesMixedVersions(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	for _, small := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
		both := !small[0] && !small[1]
		for _, mode := range []string{"XX", "IK", "resumed"} {
			t.Run(fmt.Sprintf("%s/source-small=%t/dest-small=%t", mode, small[0], small[1]), func(t *testing.T) {
				k := mixedKeys(t, small[0], small[1], mode)
				p := newPath(t, 1, nil)
				tap := &recordTap{}
				p.wrap = tap.wrap
				c, err := p.connectWith(basicOpen(), k.accept, k.dial(basicOpen(), mode == "XX", false, mode == "resumed"))
				if err != nil {
					t.Fatal(err)
				}
				defer c.stop()
				exchange(t, c.caller, c.dest, c.caller.CloseWrite, c.dest.CloseWrite, data)
				checkRecordSizes(t, tap.largest(), both)
			})
		}
		t.Run(fmt.Sprintf("resumable/source-small=%t/dest-small=%t", small[0], small[1]), func(t *testing.T) {
			g := newResumeRig(t)
			if small[0] {
				g.k.s.SmallRecordsOnly()
			}
			if small[1] {
				g.k.d.SmallRecordsOnly()
			}
			tap := &recordTap{}
			g.wrap = tap.wrap
			_, src, dst := g.pair(ResumeConfig{}, ResumeConfig{})
			exchange(t, src, dst, src.CloseWrite, dst.CloseWrite, data)
			checkRecordSizes(t, tap.largest(), both)
		})
	}
}

// A relay that clears the large-records flag of a source that set it, or
// sets it for a source that predates it, makes the open fail in every
// handshake mode: the prologue binds the flags, so the destination cannot
// decrypt an IK or resumed first message (it resets the stream) and the
// source cannot decrypt an XX reply (ErrAuth).
func TestSealedLargeFlagChangedOnTheWay(t *testing.T) {
	for _, mode := range []string{"XX", "IK", "resumed"} {
		for _, add := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/add=%t", mode, add), func(t *testing.T) {
				k := mixedKeys(t, add, false, mode)
				p := newPath(t, 1, nil)
				p.forge = func(o *Open) { o.Flags ^= FlagLargeRecords }
				c, err := p.connectWith(basicOpen(), k.accept, k.dial(basicOpen(), mode == "XX", false, mode == "resumed"))
				if err == nil {
					c.stop()
					t.Fatal("the open succeeded with the large-records flag changed on the way")
				}
				var reset *ResetError
				if !errors.Is(err, ErrAuth) && !errors.As(err, &reset) {
					t.Fatalf("open with the flag changed: %v, want ErrAuth or a reset", err)
				}
			})
		}
	}
}
