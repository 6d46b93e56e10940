package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"testing"

	"github.com/hashicorp/memberlist"
)

// TestAttackGossipHugeMetadataHeld: a stranger with no certificate and
// no gossip key pushes push-pulls of made-up members whose metadata
// names the mesh and a link address, padded to 2 MiB each (a node's own
// is at most memberlist's MetaMaxSize, 512 bytes). memberlist bounds the
// metadata a node sends, not what it takes: it kept each member's
// metadata, so d's heap grew by what the stranger pushed, and d pushed
// it on to every member it gossips with. d must refuse metadata longer
// than any node sends.
func TestAttackGossipHugeMetadataHeld(t *testing.T) {
	d := plainGossipNode(t, "d")
	const pushes, members, size = 8, 4, 2 << 20
	pad := bytes.Repeat([]byte("x"), size)
	meta, _ := json.Marshal(struct {
		Link string `json:"link"`
		Mesh string `json:"mesh"`
		Pad  string `json:"pad"`
	}{"127.0.0.1:9", "test", string(pad)})
	base := liveHeap()
	for i := range pushes {
		j := 0
		pushStates(t, d.Status().GossipAddr, members, func() pushedState {
			j++
			return pushedState{Name: fmt.Sprintf("ghost-%d-%d", i, j), Addr: net.IPv4(127, 0, 0, 1).To4(), Port: 9,
				Meta: meta, Incarnation: 1, Vsn: []uint8{1, 5, 2, 0, 0, 0}}
		})
	}
	grew := int64(liveHeap()) - int64(base)
	big := 0
	for _, m := range d.disco.ml.Members() {
		if len(m.Meta) > memberlist.MetaMaxSize {
			big++
		}
	}
	t.Logf("a stranger pushed %d members with %d MiB of metadata each: d's memberlist holds %d of them, d's live heap grew by %d MiB",
		pushes*members, size>>20, big, grew>>20)
	if big > 0 || grew > 16<<20 {
		t.Errorf("d holds %d members with metadata beyond %d bytes; its live heap grew by %d MiB", big, memberlist.MetaMaxSize, grew>>20)
	}
}
