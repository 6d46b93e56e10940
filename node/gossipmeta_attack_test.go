package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	rmetrics "runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

// TestAttackGossipHugeMetadataHeld: a stranger with no certificate and
// no gossip key pushes push-pulls of made-up members whose metadata
// names the mesh and a link address, padded to 2 MiB each (a node's own
// is at most memberlist's MetaMaxSize, 512 bytes), or whose gossip
// address is 2 MiB long (an IP address is 4 or 16 bytes). memberlist
// bounds neither in what it takes: it kept each member's, so d's heap
// grew by what the stranger pushed, and d pushed it on to every member
// it gossips with. d must refuse what no node sends.
func TestAttackGossipHugeMetadataHeld(t *testing.T) {
	const size = 2 << 20
	pad := string(bytes.Repeat([]byte("x"), size))
	small, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "test"})
	big, _ := json.Marshal(struct {
		Link string `json:"link"`
		Mesh string `json:"mesh"`
		Pad  string `json:"pad"`
	}{"127.0.0.1:9", "test", pad})
	for _, tc := range []struct {
		name       string
		meta, addr []byte
	}{
		{"metadata", big, net.IPv4(127, 0, 0, 1).To4()},
		{"gossip address", small, []byte(pad)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := plainGossipNode(t, "d")
			const pushes, members = 8, 4
			base := liveHeap()
			for i := range pushes {
				j := 0
				pushStates(t, d.Status().GossipAddr, members, func() gossipPushState {
					j++
					return gossipPushState{Name: fmt.Sprintf("ghost-%d-%d", i, j), Addr: tc.addr, Port: 9,
						Meta: tc.meta, Incarnation: 1, Vsn: []uint8{1, 5, 2, 0, 0, 0}}
				})
			}
			grew := int64(liveHeap()) - int64(base)
			held := 0
			for _, m := range d.disco.ml.Members() {
				if len(m.Meta) > memberlist.MetaMaxSize || len(m.Addr) > net.IPv6len {
					held++
				}
			}
			t.Logf("a stranger pushed %d members with %d MiB of %s each: d's memberlist holds %d of them, d's live heap grew by %d MiB",
				pushes*members, size>>20, tc.name, held, grew>>20)
			if held > 0 || grew > 16<<20 {
				t.Errorf("d holds %d members with a %s beyond any node's; its live heap grew by %d MiB", held, tc.name, grew>>20)
			}
		})
	}
}

// TestAttackGossipUserMessageHeld: a stranger opens gossip connections
// from one address and on each writes memberlist's user message type and
// a header announcing 20 MiB (memberlist's bound), then nothing.
// memberlist allocates the message the header announces as soon as it
// reads it and holds it until its TCP timeout (10 s); discovery sends no
// user messages, and d must not hold 16 MiB for four connections.
func TestAttackGossipUserMessageHeld(t *testing.T) {
	d := plainGossipNode(t, "d")
	var msg bytes.Buffer
	msg.WriteByte(gmUser)
	if err := codec.NewEncoder(&msg, &codec.MsgpackHandle{}).Encode(struct{ UserMsgLen int }{20 << 20}); err != nil {
		t.Fatal(err)
	}
	base := liveHeap()
	for range gossipStreamShare {
		c, err := net.DialTimeout("tcp", d.Status().GossipAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(msg.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	most := peakLiveHeap()
	grew := int64(most) - int64(base)
	t.Logf("%d silent connections of %d bytes each: d's live heap grew by up to %d MiB while they wait", gossipStreamShare, msg.Len(), grew>>20)
	if grew > 16<<20 {
		t.Errorf("%d silent gossip connections of %d bytes each made d hold %d MiB", gossipStreamShare, msg.Len(), grew>>20)
	}
}

// TestAttackGossipHugePushStateAllocated: a stranger opens 4 push-pulls
// at once, each of one state whose metadata is 18 MiB (a node's is at
// most 512 bytes). The guard held each state whole to decode it before
// memberlist read it, and memberlist decoded it again before
// NotifyAlive refused it: d allocated each state's metadata three times
// over. d must refuse the stream once a state goes beyond what a node
// sends, before memberlist reads it.
func TestAttackGossipHugePushStateAllocated(t *testing.T) {
	d := plainGossipNode(t, "d")
	refused := d.disco.guard.metric.WithLabelValues("stream", refuseState)
	const size, pushes = 18 << 20, 4
	var msg bytes.Buffer
	msg.Write(pushPullHeader(t, 1, 0))
	if err := codec.NewEncoder(&msg, &codec.MsgpackHandle{}).Encode(gossipPushState{Name: "ghost", Addr: net.IPv4(127, 0, 0, 1).To4(), Port: 9,
		Meta: bytes.Repeat([]byte("x"), size), Incarnation: 1, Vsn: []uint8{1, 5, 2, 0, 0, 0}}); err != nil {
		t.Fatal(err)
	}
	allocs0 := heapAllocs()
	var wg sync.WaitGroup
	for range pushes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", d.Status().GossipAddr, 5*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(time.Minute))
			_, _ = c.Write(msg.Bytes()) // d may close it before it is all sent
			_, _ = io.Copy(io.Discard, c)
		}()
	}
	wg.Wait()
	allocated := heapAllocs() - allocs0
	t.Logf("%d push-pulls of one state with %d MiB of metadata at once: d allocated %d MiB, refused %v streams",
		pushes, size>>20, allocated>>20, counterValue(refused))
	if allocated > 32<<20 || counterValue(refused) < pushes {
		t.Errorf("%d push-pulls of one %d MiB state: d allocated %d MiB (want at most 32), refused %v of them",
			pushes, size>>20, allocated>>20, counterValue(refused))
	}
}

// heapAllocs is the bytes the process allocated on the heap so far.
func heapAllocs() uint64 {
	s := []rmetrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	rmetrics.Read(s)
	return s[0].Value.Uint64()
}
