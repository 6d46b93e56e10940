package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
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
				pushStates(t, d.Status().GossipAddr, members, func() pushedState {
					j++
					return pushedState{Name: fmt.Sprintf("ghost-%d-%d", i, j), Addr: tc.addr, Port: 9,
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
	var most uint64
	for range 4 {
		time.Sleep(250 * time.Millisecond)
		most = max(most, liveHeap())
	}
	grew := int64(most) - int64(base)
	t.Logf("%d silent connections of %d bytes each: d's live heap grew by up to %d MiB while they wait", gossipStreamShare, msg.Len(), grew>>20)
	if grew > 16<<20 {
		t.Errorf("%d silent gossip connections of %d bytes each made d hold %d MiB", gossipStreamShare, msg.Len(), grew>>20)
	}
}
