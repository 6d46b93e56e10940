package node

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// bulkService answers each circuit's first byte with the first byte of
// bulkSize bytes of bulkData, and its second byte (or, when the service
// was published with a release channel, the channel's closing) with the
// rest, then reads until the circuit ends: a download, as a file server
// sends one.
const (
	bulkService = "bulk"
	bulkSize    = 512 << 10
)

// bulkData is what bulkService sends.
var bulkData = func() []byte {
	b := make([]byte, bulkSize)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}()

// serveBulk publishes bulkService on n; release, if not nil, lets the
// downloads go on past their first byte when it closes.
func serveBulk(t testing.TB, n *Node, release <-chan struct{}) {
	serve(t, n, bulkService, func(c io.ReadWriteCloser) {
		var one [1]byte
		if _, err := io.ReadFull(c, one[:]); err != nil {
			return
		}
		if _, err := c.Write(bulkData[:1]); err != nil {
			return
		}
		if release == nil {
			if _, err := io.ReadFull(c, one[:]); err != nil {
				return
			}
		} else {
			select {
			case <-release:
			case <-t.Context().Done():
				return
			}
		}
		if _, err := c.Write(bulkData[1:]); err != nil {
			return
		}
		io.Copy(io.Discard, c)
	})
}

// handCircuit is a resumable circuit m opens and frames by hand: it never
// acknowledges what it reads, and resumes claiming to have received
// nothing.
type handCircuit struct {
	id   [16]byte
	conn *circuit.Conn
}

// openByHand opens a sealed circuit from m to d's service with
// FlagResumable and flags, as a member's own code may.
func openResumableTo(t *testing.T, m *Node, d, service string, flags circuit.Flags) (*circuit.Conn, error) {
	s, err := m.link(d).OpenStream(ctxT(t, patience))
	if err != nil {
		return nil, err
	}
	o := &circuit.Open{Dest: d, Source: m.Name(), Service: service, HopLimit: 15, Flags: circuit.FlagResumable | flags}
	sec := circuit.Security{Keys: m.seal.Load()}
	if r, ok := m.keyBook.LookupKey(d); ok {
		sec.Peer = r
	}
	return circuit.DialSecure(ctxT(t, patience), s, o, circuit.Addr{Node: m.Name(), Service: service}, sec)
}

// readData reads the frames d sends on conn until want data bytes came,
// and returns how many did. It answers nothing: no ack, no pong.
func readData(conn *circuit.Conn, want int) (int, error) {
	conn.SetReadDeadline(time.Now().Add(patience))
	var hdr [9]byte
	got := 0
	for got < want {
		if _, err := io.ReadFull(conn, hdr[:1]); err != nil {
			return got, err
		}
		var err error
		switch hdr[0] {
		case frameDataType:
			if _, err = io.ReadFull(conn, hdr[1:3]); err == nil {
				n := int(binary.BigEndian.Uint16(hdr[1:3]))
				var k int64
				k, err = io.CopyN(io.Discard, conn, int64(n))
				got += int(k)
			}
		case 3, 6: // ack, resumed: an offset
			_, err = io.ReadFull(conn, hdr[1:9])
		case 4, 7, 8: // fin, ping, pong
		default:
			return got, fmt.Errorf("frame type %d", hdr[0])
		}
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// TestAttackResumesResendAtTheSourcesRate: m, a member with a valid
// certificate linked to d, has d's bulk service send it bulkSize bytes on
// each of several resumable circuits, never acknowledges them, and
// resumes each circuit again and again claiming to have received nothing:
// d sends the whole download again, sealed anew, on every resumed path.
// Each resume costs m an open and a 25-byte frame. m goes on until d sent
// three times m's share of d's resume buffers again, or d refused
// stormRefusals of its resume opens overloaded.
//
// The bound of circuit.ResumeResendSlack windows per circuit leaves each
// circuit 10 windows (40 MiB) sent again, within the limits on circuits:
// d's re-sends for m were bounded only by how fast d could seal. Now they
// draw on m's budget of re-sent bytes (a bucket of
// Limits.ResumeBufferPerSource bytes earning Limits.ResumeResendPerSource
// a second), and m's resume opens are refused overloaded while it is in
// debt.
func TestAttackResumesResendAtTheSourcesRate(t *testing.T) {
	const (
		attackers     = 8
		rate          = 64 << 10 // bytes a second
		target        = 3 * MinResumeBuffer
		stormRefusals = 200
	)
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.ResumeBufferPerSource = MinResumeBuffer
		cfg.Limits.ResumeResendPerSource = rate
	}
	c.build("m-d")
	m, d := c.nodes["m"], c.nodes["d"]
	serveBulk(t, d, nil)
	// m learns d's key and gets a session ticket, as any peer of d does:
	// its opens below are resumed handshakes.
	for range 2 {
		if err := roundTrip(t, m, "d", EchoService, []byte("m")); err != nil {
			t.Fatal(err)
		}
	}

	var (
		sent              atomic.Int64 // bytes m wrote into its circuits, framing included
		opens, resumes    atomic.Int64 // circuits m opened, resumes d took
		overloaded, ended atomic.Int64 // resume opens refused overloaded, circuits d ended
		overBudget        atomic.Int64 // of the refused, those refused for m's budget of re-sent bytes
		received          atomic.Int64 // data bytes m read on resumed paths
		mu                sync.Mutex
		firstErr, refusal error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	// fresh opens a circuit to the bulk service and reads its download.
	fresh := func() (*handCircuit, error) {
		conn, err := openResumableTo(t, m, "d", bulkService, 0)
		if err != nil {
			return nil, err
		}
		h := &handCircuit{conn: conn}
		rand.Read(h.id[:])
		frames := append([]byte{frameHelloType}, h.id[:]...)
		frames = append(binary.BigEndian.AppendUint16(append(frames, frameDataType), 2), "xg"...)
		if _, err := conn.Write(frames); err != nil {
			conn.Reset(circuit.CloseCancelled)
			return nil, err
		}
		sent.Add(int64(len(frames)))
		opens.Add(1)
		if _, err := readData(conn, bulkSize); err != nil {
			conn.Reset(circuit.CloseCancelled)
			return nil, err
		}
		return h, nil
	}

	resent0 := d.resumeTable.Resent()
	resent := func() int64 { return d.resumeTable.Resent() - resent0 }
	start := time.Now()
	giveUp := start.Add(3 * patience)
	done := func() bool {
		return resent() >= target || overloaded.Load() >= stormRefusals || time.Now().After(giveUp)
	}
	var wg sync.WaitGroup
	for range attackers {
		wg.Go(func() {
			var h *handCircuit
			defer func() {
				if h != nil {
					h.conn.Reset(circuit.CloseCancelled)
				}
			}()
			for !done() {
				if h == nil {
					var err error
					if h, err = fresh(); err != nil {
						fail(fmt.Errorf("opening a circuit: %w", err))
						return
					}
				}
				conn, err := openResumableTo(t, m, "d", bulkService, circuit.FlagResume)
				if errors.Is(err, circuit.ErrOverloaded) {
					overloaded.Add(1)
					if strings.Contains(err.Error(), "more sent again than its budget") {
						overBudget.Add(1)
					}
					mu.Lock()
					refusal = err
					mu.Unlock()
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if err != nil {
					fail(fmt.Errorf("resume open: %w", err))
					return
				}
				frame := binary.BigEndian.AppendUint64(append([]byte{frameResumeType}, h.id[:]...), 0)
				if _, err := conn.Write(frame); err != nil {
					conn.Reset(circuit.CloseCancelled)
					fail(fmt.Errorf("resume frame: %w", err))
					return
				}
				sent.Add(int64(len(frame)))
				conn.SetReadDeadline(time.Now().Add(patience))
				var resumed [9]byte
				_, err = io.ReadFull(conn, resumed[:])
				// The old path goes: d dropped it for the new one (a
				// reset by m before would end the circuit at d).
				h.conn.Reset(circuit.CloseCancelled)
				h.conn = conn
				n := 0
				if err == nil {
					n, err = readData(conn, bulkSize)
				}
				received.Add(int64(n))
				if err != nil {
					// d refused the resume beyond the circuit's
					// ResumeResendSlack windows and ended the circuit:
					// m opens another.
					ended.Add(1)
					conn.Reset(circuit.CloseCancelled)
					h = nil
					continue
				}
				resumes.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	again := resent()
	t.Logf("in %v m opened %d circuits and wrote %d bytes into them (framing included); d took %d resumes, ended %d circuits, refused %d resume opens overloaded (last: %v)",
		elapsed.Round(time.Millisecond), opens.Load(), sent.Load(), resumes.Load(), ended.Load(), overloaded.Load(), refusal)
	t.Logf("d sent %d positions again for m (%.0f a second, %.0f per byte m wrote); m read %d data bytes on resumed paths",
		again, float64(again)/elapsed.Seconds(), float64(again)/float64(sent.Load()), received.Load())
	if time.Now().After(giveUp) {
		t.Fatalf("m neither had %d bytes sent again nor %d resume opens refused in %v", target, stormRefusals, elapsed)
	}
	// The bucket, what it earned meanwhile, and what the resumes in
	// flight when it ran dry (one per attacker) were admitted to send.
	limit := int64(MinResumeBuffer) + int64(elapsed.Seconds()*rate) + attackers*(bulkSize+1)
	if again > limit {
		t.Errorf("d sent %d positions again for m in %v, want at most %d (a bucket of %d bytes earning %d a second, and %d resumes in flight of %d bytes)",
			again, elapsed.Round(time.Millisecond), limit, MinResumeBuffer, rate, attackers, bulkSize)
	}
	if overloaded.Load() == 0 {
		t.Errorf("d never refused m's resume opens overloaded")
	}
	// What an operator sees: every refusal of the budget, counted.
	got := metricValue(t, d, "circuitmesh_resume_resend_refused_total", "", "")
	t.Logf("d's circuitmesh_resume_resend_refused_total: %v; m read %d refusals for its budget of re-sent bytes", got, overBudget.Load())
	if got != float64(overBudget.Load()) || got == 0 {
		t.Errorf("d's circuitmesh_resume_resend_refused_total is %v, want the %d resume opens m saw refused for its budget of re-sent bytes (of %d refused overloaded)",
			got, overBudget.Load(), overloaded.Load())
	}
}
