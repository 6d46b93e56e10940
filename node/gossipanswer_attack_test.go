package node

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// memberlist's errMsg type, and the fields of its errResp and ackResp.
const gmErrAnswer = 13

type (
	errAnswer struct{ Error string }
	ackAnswer struct {
		SeqNo   uint32
		Payload []byte
	}
)

// answerMsg is memberlist's message of type t whose fields are msg.
func answerMsg(t *testing.T, typ byte, msg any) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteByte(typ)
	if err := codec.NewEncoder(&b, &codec.MsgpackHandle{}).Encode(msg); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// answerAllocated listens on a TCP port of 127.0.0.1 and serves, on
// each stream d opens to it, answer once d's first message has come,
// until d closes the stream (memberlist closes it once it has read the
// answer, or failed to). It calls start with the port, and returns how
// many bytes the process allocated from before start until the first
// such stream ended, or fails the test when none did within 30 s.
func answerAllocated(t *testing.T, answer []byte, start func(port int)) uint64 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ended := make(chan struct{}, 1)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
				var first [1]byte
				if _, err := io.ReadFull(conn, first[:]); err != nil {
					return
				}
				done := make(chan struct{})
				go func() {
					_, _ = io.Copy(io.Discard, conn) // until d closes it
					close(done)
				}()
				w := bufio.NewWriterSize(conn, 1<<16)
				_, _ = w.Write(answer)
				_ = w.Flush()
				<-done
				select {
				case ended <- struct{}{}:
				default:
				}
			}()
		}
	}()
	before := heapAllocs()
	start(ln.Addr().(*net.TCPAddr).Port)
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("d opened no gossip stream to the stranger, or did not close it, within 30 s")
	}
	return heapAllocs() - before
}

// TestAttackGossipHugeAnswers: a stranger without a certificate or the
// gossip key answers the streams a node opens to it with memberlist's
// largest: a push-pull (a join, as here, or the node's periodic
// push-pull with a random member) with an error answer of 20 MiB of
// text, and a stream ping (memberlist's fallback when a probe's datagram
// gets no ack; here of a made-up member the stranger pushed, at its own
// port) with an ack of 20 MiB of payload. The guard inspected only the
// answers to push-pulls: memberlist decoded either answer as it came,
// growing it 256 KiB at a time, each step a copy of all before it. d
// allocated 1,155 MiB for the error answer (peak live heap +145 MiB) and
// its join failed with an error of 20 MiB, logged whole; each stream
// ping cost it about 800 MiB (three in 12 s: 2,433 MiB, peak +120 MiB).
// An honest error answer or ack is under 1.1 KiB; d must refuse larger
// ones before memberlist reads them.
func TestAttackGossipHugeAnswers(t *testing.T) {
	const size = 20<<20 - 64
	const most = 64 << 20   // allocated by d meanwhile; before, over 800 MiB
	const errMost = 8 << 10 // the join's error; before, 20 MiB
	d := plainGossipNode(t, "d")
	refused := d.disco.guard.metric.WithLabelValues("stream", "answer")
	t.Run("error answer to a join", func(t *testing.T) {
		answer := answerMsg(t, gmErrAnswer, errAnswer{Error: strings.Repeat("e", size)})
		var joinErr error
		allocated := answerAllocated(t, answer, func(port int) {
			_, joinErr = d.disco.ml.Join([]string{fmt.Sprintf("127.0.0.1:%d", port)})
		})
		t.Logf("an error answer of %.0f MiB to d's join: d allocated %d MiB; the join's error is %d bytes; refused %v answers",
			float64(size)/(1<<20), allocated>>20, len(joinErr.Error()), counterValue(refused))
		if allocated > most || len(joinErr.Error()) > errMost {
			t.Errorf("an error answer of %.0f MiB: d allocated %d MiB (want at most %d), its join failed with an error of %d bytes (want at most %d)",
				float64(size)/(1<<20), allocated>>20, most>>20, len(joinErr.Error()), errMost)
		}
		// An error answer of an honest size still reaches the join's error.
		answerAllocated(t, answerMsg(t, gmErrAnswer, errAnswer{Error: "state refused"}), func(port int) {
			_, joinErr = d.disco.ml.Join([]string{fmt.Sprintf("127.0.0.1:%d", port)})
		})
		if joinErr == nil || !strings.Contains(joinErr.Error(), "remote error: state refused") {
			t.Errorf("an honest error answer to d's join: the join's error is %v, want the remote's text", joinErr)
		}
	})
	t.Run("ack to a stream ping", func(t *testing.T) {
		answer := answerMsg(t, gmAck, ackAnswer{SeqNo: 1, Payload: bytes.Repeat([]byte("a"), size)})
		before := counterValue(refused)
		allocated := answerAllocated(t, answer, func(port int) {
			// A made-up member at the stranger's port, whose UDP
			// port nothing answers: d's probes fall back to streams.
			meta, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "test"})
			pushStates(t, d.Status().GossipAddr, 1, func() gossipPushState {
				return gossipPushState{Name: "ghost", Addr: net.IPv4(127, 0, 0, 1).To4(), Port: uint16(port),
					Meta: meta, Incarnation: 1, Vsn: []uint8{1, 5, 2, 0, 0, 0}}
			})
		})
		t.Logf("an ack of %.0f MiB to d's stream ping: d allocated %d MiB; refused %v answers", float64(size)/(1<<20), allocated>>20, counterValue(refused)-before)
		if allocated > most || counterValue(refused) == before {
			t.Errorf("an ack of %.0f MiB to a stream ping: d allocated %d MiB (want at most %d), refused %v answers (want 1 or more)",
				float64(size)/(1<<20), allocated>>20, most>>20, counterValue(refused)-before)
		}
	})
	// The largest honest ack (its payload is d's coordinate, at most
	// coordSize bytes) reaches memberlist whole.
	ack := answerMsg(t, gmAck, ackAnswer{SeqNo: 1, Payload: bytes.Repeat([]byte("c"), coordSize)})
	mine, theirs := net.Pipe()
	defer theirs.Close()
	go func() {
		_, _ = theirs.Write(ack)
		_ = theirs.Close()
	}()
	got, err := io.ReadAll(d.disco.guard.guard(mine, false))
	if err != nil || !bytes.Equal(got, ack) {
		t.Errorf("an ack with a payload of %d bytes: memberlist would read %d bytes (%v), not the %d sent", coordSize, len(got), err, len(ack))
	}
}
