package node

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// TestAttackGossipJoinAnswerHeld: a malicious member answers the
// push-pull a node starts with it (memberlist's join, as here, or its
// periodic push-pull with a random member) with all but the end of an
// answer as large as memberlist takes, then waits. The guard inspected
// inbound streams only, so memberlist decoded the answer into memory
// (plaintext: a header announcing 65,536 states, then 5,000 states of
// 3.5 KiB; encrypted: a length of 20 MiB, then that much less a byte)
// and held it until its TCP timeout (10 s). The answer is charged to the
// bytes the node holds for gossip streams as an inbound stream is (16
// MiB), so the node holds at most that.
func TestAttackGossipJoinAnswerHeld(t *testing.T) {
	withEachGossipKey(t, func(t *testing.T, d *Node, key []byte) {
		answer := hugePushPullAnswer(t, key != nil)
		grew := heldByAnswer(t, d, answer)
		t.Logf("an answer of %d MiB to d's join, all but its end sent: d's live heap grew by up to %d MiB while it waits; %d streams refused",
			len(answer)>>20, grew>>20, gossipRefused(d))
		if grew > gossipHeld {
			t.Errorf("a member answering d's push-pull made d hold %d MiB (want at most %d MiB)", grew>>20, gossipHeld>>20)
		}
	})
}

// hugePushPullAnswer is the answer TestAttackGossipJoinAnswerHeld
// sends, less its end (the last state, or the last byte).
func hugePushPullAnswer(t *testing.T, encrypted bool) []byte {
	if encrypted {
		const announced = gossipStreamMax
		msg := make([]byte, 5+announced-1)
		msg[0] = gmEncrypt
		binary.BigEndian.PutUint32(msg[1:], announced)
		return msg
	}
	meta := bytes.Repeat([]byte("x"), 3500)
	var body bytes.Buffer
	body.Write(pushPullHeader(t, maxMembers, 0))
	enc := codec.NewEncoder(&body, &codec.MsgpackHandle{})
	for i := range 5000 {
		if err := enc.Encode(gossipPushState{Name: fmt.Sprintf("ghost-%d", i), Addr: net.IPv4(127, 0, 0, 1).To4(), Port: 9,
			Meta: meta, Incarnation: 1, Vsn: []uint8{1, 5, 2, 0, 0, 0}}); err != nil {
			t.Fatal(err)
		}
	}
	return body.Bytes()
}

// heldByAnswer has d join a listener that answers d's push-pull with
// answer and then waits, and returns how far d's live heap grew once d
// is done reading, the stream still open. It waits for the join to end
// once the stream is closed.
func heldByAnswer(t *testing.T, d *Node, answer []byte) (grew int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	base := settledLiveHeap()
	joined := make(chan error, 1)
	go func() {
		_, err := d.disco.ml.Join([]string{ln.Addr().String()})
		joined <- err
	}()
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatalf("d did not push-pull with the member: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, conn) }() // d's state
	_ = conn.SetWriteDeadline(time.Now().Add(8 * time.Second))
	w := bufio.NewWriterSize(conn, 1<<16)
	_, _ = w.Write(answer)
	_ = w.Flush()
	grew = int64(settledLiveHeap()) - int64(base)
	runtime.KeepAlive(answer) // counted in base: keep it there
	_ = conn.Close()
	select {
	case <-joined:
	case <-time.After(30 * time.Second):
		t.Fatal("d's join did not end 30 s after the member closed the stream")
	}
	return grew
}

// TestAttackGossipStalledPingHeld: a stranger opens the node's 16 gossip
// streams from one address and on each writes memberlist's ping type and
// a ping whose node name is 4 MiB (a member's is at most 255 bytes), all
// but its last byte, then waits. The guard inspected only a ping's type:
// memberlist decoded the name into memory as it came and held it until
// its TCP timeout (10 s). The guard reads the ping whole before
// memberlist does and refuses one beyond gossipPingMax.
func TestAttackGossipStalledPingHeld(t *testing.T) {
	d := plainGossipNode(t, "d")
	const nameSize = 4 << 20
	var msg bytes.Buffer
	msg.WriteByte(gmPing)
	if err := codec.NewEncoder(&msg, &codec.MsgpackHandle{}).Encode(gossipPing{SeqNo: 1, Node: string(bytes.Repeat([]byte("x"), nameSize))}); err != nil {
		t.Fatal(err)
	}
	ping := msg.Bytes()[:msg.Len()-1] // the last byte never comes
	grew := heldByStreams(t, d, gossipStreams, func(conn net.Conn) { _, _ = conn.Write(ping) })
	t.Logf("%d pings naming a node of %d MiB, all but the last byte sent: d's live heap grew by up to %d MiB while they wait; %d streams refused",
		gossipStreams, nameSize>>20, grew>>20, gossipRefused(d))
	if grew > 8<<20 {
		t.Errorf("a stranger's %d stalled pings made d hold %d MiB (want at most 8 MiB)", gossipStreams, grew>>20)
	}
	// A member's ping on a stream is answered with an ack (compressed,
	// as memberlist sends it).
	msg.Reset()
	msg.WriteByte(gmPing)
	if err := codec.NewEncoder(&msg, &codec.MsgpackHandle{}).Encode(gossipPing{SeqNo: 7, Node: "d", SourceAddr: net.IPv4(127, 0, 0, 1).To4(), SourcePort: 9, SourceNode: "m"}); err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", d.Status().GossipAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var answer [1]byte
	if _, err := conn.Write(msg.Bytes()); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, answer[:]); err != nil || answer[0] != gmAck && answer[0] != gmCompress {
		t.Errorf("a member's ping on a stream: answered with message type %d, %v; want an ack", answer[0], err)
	}
}
