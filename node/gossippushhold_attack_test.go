package node

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// TestAttackGossipPushPullStatesHeld: a stranger with no certificate and
// no gossip key opens the node's 16 gossip streams from one address and
// on each pushes a push-pull of made-up states whose metadata is 3.5 KiB
// each (every state under the guard's 4 KiB bound, the stream under its
// 20 MiB), sends all but the last state and waits. memberlist decodes
// every state into memory before it merges any (NotifyAlive, which
// refuses metadata beyond 512 bytes, runs only after the last state) and
// holds them until its TCP timeout (10 s). Nobody without a key or
// certificate may make d hold more than a small bound: 5,000 and 1,025
// states (d, which knows only itself, takes up to 5,121 in a push-pull)
// on each of 16 streams are more than the bytes it holds for inbound
// streams.
func TestAttackGossipPushPullStatesHeld(t *testing.T) {
	for _, states := range []int{5000, 1025} {
		t.Run(fmt.Sprintf("states=%d", states), func(t *testing.T) {
			pushStatesHeld(t, states)
		})
	}
}

func pushStatesHeld(t *testing.T, states int) {
	d := plainGossipNode(t, "d")
	const metaSize = 3500
	meta := bytes.Repeat([]byte("x"), metaSize)
	var body bytes.Buffer
	body.Write(pushPullHeader(t, states, 0))
	enc := codec.NewEncoder(&body, &codec.MsgpackHandle{})
	for i := range states - 1 { // the last never comes
		if err := enc.Encode(gossipPushState{Name: fmt.Sprintf("ghost-%d", i), Addr: net.IPv4(127, 0, 0, 1).To4(), Port: 9,
			Meta: meta, Incarnation: 1, Vsn: []uint8{1, 5, 2, 0, 0, 0}}); err != nil {
			t.Fatal(err)
		}
	}
	msg := body.Bytes()
	grew := heldByStreams(t, d, gossipStreams, func(conn net.Conn) {
		w := bufio.NewWriterSize(conn, 1<<16)
		_, _ = w.Write(msg)
		_ = w.Flush()
	})
	t.Logf("%d push-pulls of %d states of %d-byte metadata (%d MiB each), all but the last state sent: d's live heap grew by up to %d MiB while they wait; %d streams refused",
		gossipStreams, states, metaSize, len(msg)>>20, grew>>20, gossipRefused(d))
	if grew > 32<<20 {
		t.Errorf("a stranger without key or certificate made d hold %d MiB with %d gossip streams (want at most 32 MiB)", grew>>20, gossipStreams)
	}
}

// heldByStreams opens n gossip streams to d, has write send what each
// carries (the node never gets the rest) from a goroutine of its own, and
// returns how far d's live heap grew once d is done reading, the streams
// still open.
func heldByStreams(t *testing.T, d *Node, n int, write func(conn net.Conn)) (grew int64) {
	t.Helper()
	base := settledLiveHeap() // what an earlier test left may still be collected
	var wg sync.WaitGroup
	for range n {
		conn, err := net.DialTimeout("tcp", d.Status().GossipAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wg.Go(func() {
			_ = conn.SetWriteDeadline(time.Now().Add(8 * time.Second))
			write(conn)
		})
	}
	wg.Wait()
	grew = int64(settledLiveHeap()) - int64(base)
	runtime.KeepAlive(write) // what it sends was counted in base: keep it there
	return grew
}

// settledLiveHeap is the live heap (liveHeap) once the node is done
// reading what it was sent: sampled every 250 ms until two samples in a
// row are within 1 MiB of each other, the larger of them; after 5 s, the
// largest sampled. While the node still decodes, what it allocates
// between a sample's collection and its reading counts as well, garbage
// or not: under the race detector that added up to 15 MiB beyond what
// the node held.
func settledLiveHeap() uint64 {
	const near = 1 << 20
	var last, most uint64
	for end := time.Now().Add(5 * time.Second); ; {
		time.Sleep(250 * time.Millisecond)
		h := liveHeap()
		most = max(most, h)
		if last != 0 && max(h, last)-min(h, last) < near {
			return max(h, last)
		}
		if time.Now().After(end) {
			return most
		}
		last = h
	}
}
