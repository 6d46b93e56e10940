package node

import (
	"crypto/rand"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// Frame types of the resumable framing (docs/PROTOCOL.md §3.9).
const (
	frameHelloType  = 1
	frameDataType   = 2
	frameResumeType = 5
)

// stormData is what m's circuit has d's echo send back, never
// acknowledged; stormResumes is how many times m resumes it.
const (
	stormData    = 1 << 20
	stormResumes = 60
)

// TestAttackResumeStormResendsTheWindow: m, a member with a valid
// certificate, opens a resumable circuit to d's echo service, sends
// stormData bytes and reads the echo without ever acknowledging it, then
// resumes the circuit again and again, each time claiming to have
// received nothing (offset 0, what it acknowledged: an offset d takes).
// Each resume costs m a stream, a resumed handshake and a 25-byte frame;
// d sends everything unacknowledged again on every new path, sealing it
// anew. The source's own bound on resumes without progress
// (circuit.MaxResumesWithoutProgress) is the honest source's: d had none.
// Before, d took every resume and sent the whole echo again each time.
// Now d refuses a resume that would take what it sent again on resumed
// paths beyond what the source acknowledged by circuit.ResumeResendSlack
// windows, and ends the circuit: the storm ends with it.
func TestAttackResumeStormResendsTheWindow(t *testing.T) {
	c := newCluster(t, true)
	c.build("m-d")
	m, d := c.nodes["m"], c.nodes["d"]
	// m learns d's key and gets a session ticket, as any peer of d does.
	for range 2 {
		if err := roundTrip(t, m, "d", EchoService, []byte("m")); err != nil {
			t.Fatal(err)
		}
	}
	open := func(flags circuit.Flags) (*circuit.Conn, error) { return openResumableByHand(t, m, "d", flags) }
	// readFor reads conn until n bytes came or it ends, and returns the count.
	readFor := func(conn *circuit.Conn, n int) int {
		conn.SetReadDeadline(time.Now().Add(patience))
		got, _ := io.ReadFull(conn, make([]byte, n))
		return got
	}

	var id [16]byte
	rand.Read(id[:])
	first, err := open(0)
	if err != nil {
		t.Fatal(err)
	}
	var sent int64 // bytes m wrote into its circuits, framing included
	frames := append([]byte{frameHelloType}, id[:]...)
	chunk := make([]byte, 32<<10)
	for range stormData / len(chunk) {
		frames = binary.BigEndian.AppendUint16(append(frames, frameDataType), uint16(len(chunk)))
		frames = append(frames, chunk...)
	}
	if _, err := first.Write(frames); err != nil {
		t.Fatal(err)
	}
	sent += int64(len(frames))
	// The echo's frames: a data frame's 3 bytes per chunk d's writer
	// sends, at most one per 16 KiB; reading the data is enough.
	echo := stormData
	if got := readFor(first, echo); got < echo {
		t.Fatalf("m read %d bytes of the echo of %d", got, echo)
	}

	accepted, refused, resent := 0, 0, 0
	var refusal error
	for i := range stormResumes {
		conn, err := open(circuit.FlagResume)
		if err != nil {
			t.Fatalf("resume %d: %v", i, err)
		}
		frame := binary.BigEndian.AppendUint64(append([]byte{frameResumeType}, id[:]...), 0)
		if _, err := conn.Write(frame); err != nil {
			t.Fatalf("resume %d: %v", i, err)
		}
		sent += int64(len(frame))
		conn.SetReadDeadline(time.Now().Add(patience))
		var resumed [9]byte
		if _, err := io.ReadFull(conn, resumed[:]); err != nil {
			refused++
			refusal = err
			break
		}
		accepted++
		resent += readFor(conn, echo)
	}
	t.Logf("m wrote %d bytes (%d of them the request echoed); d took %d of %d resumes and sent the echo again %d times, %d bytes (%.0f bytes per byte of m's resume frames); refusal: %v",
		sent, len(frames), accepted, stormResumes, resent/echo, resent, float64(resent)/float64(sent-int64(len(frames))), refusal)
	limit := (circuit.ResumeResendSlack + 1) * circuit.DefaultResumeWindow / echo
	if accepted > limit {
		t.Errorf("d took %d resumes of m's circuit, each sending %d bytes again that m never acknowledged; want at most %d", accepted, echo, limit)
	}
	if refused == 0 {
		t.Errorf("d never refused m's resumes (%d taken)", accepted)
	}
	// The refused circuit ends at d: its buffers go and no resume finds it.
	waitFor(t, "d to end m's circuit", patience, func() bool { return d.resumeTable.Len() == 0 })
}
