package node

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

// TestAttackGossipMadeUpMembersKeepJoinsOpen: without a gossip key, a
// stranger with no certificate pushes d 32 push-pulls of 1,024 made-up
// members with metadata of about 500 bytes, then an honest node j joins
// the mesh through d. d must take at most maxUnverified of them, so that
// its state fits in what j takes as its join's answer: j must list d's
// honest members at once. Before, d took them all (the
// member bound was 65,536) and j's join failed: its answer was beyond
// the bytes a node takes (gossipHeld), and j listed only itself. Then
// d must list j, with its verified metadata, within a minute: before, d
// kept j's alive message waiting for j's certificate, held j once
// routing brought it, and its memberlist never listed j (not in 60 s).
// A push-pull d starts with a or b, which know few members, must be
// taken, and a and b must then list j: before, a and b refused it at
// its header ("push-pull of 4100 states (at most 1033)"), the members
// they knew and 1,024.
func TestAttackGossipMadeUpMembersKeepJoinsOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("32 push-pulls of 1,024 members take 30 s under the race detector")
	}
	c, honest := gossipNodes(t, "d", "a", "b")
	d := honest[0]
	const pushes, per = 32, 1024
	pad := `"` + strings.Repeat("c", 440) + `"`
	// At another host than the nodes' (127.0.0.1), so that this test is of
	// the member bounds alone: made-up members on the nodes' own host are
	// TestAttackMadeUpMembersOnHonestHostKeepJoinerOut's.
	meta, _ := json.Marshal(memberMeta{Link: "127.0.0.2:9", Mesh: "test", Coord: json.RawMessage(pad)})
	start := time.Now()
	for p := range pushes {
		pushMadeUp(t, d, meta, p*per, per)
	}
	t.Logf("%d push-pulls of %d made-up members (%d bytes of metadata each) in %v: d's memberlist lists %d members",
		pushes, per, len(meta), time.Since(start).Round(time.Millisecond), d.disco.ml.NumMembers())
	if n := d.disco.ml.NumMembers(); n > 4096+len(honest) {
		t.Errorf("d's memberlist lists %d members, beyond 4,096 made up (maxUnverified) and its %d honest ones", n, len(honest))
	}

	var seed string
	c.tweak = gossipJoining(&seed)
	seed = d.Status().GossipAddr
	j := c.add("j")
	c.tweak = nil
	lists := func(n *Node, name string) bool {
		return slices.ContainsFunc(n.disco.ml.Members(), func(m *memberlist.Node) bool { return m.Name == name })
	}
	start = time.Now()
	waitFor(t, "j to list d, a and b", 30*time.Second, func() bool {
		return lists(j, "d") && lists(j, "a") && lists(j, "b")
	})
	t.Logf("j lists d, a and b %v after its join", time.Since(start).Round(time.Millisecond))

	// j's alive message reached d while d's slots were full: d keeps it
	// waiting for j's certificate, which routing brings once j links
	// into the mesh. d must then list j, with its verified metadata, as
	// a gossip member it gossips on.
	listsVerified := func(n *Node) bool {
		n.disco.mu.Lock()
		gm := n.disco.members["j"]
		n.disco.mu.Unlock()
		return gm.verified && gm.ok && lists(n, "j")
	}
	start = time.Now()
	waitFor(t, "d to list j with its verified metadata", time.Minute, func() bool { return listsVerified(d) })
	t.Logf("d lists j %v after j listed it", time.Since(start).Round(time.Millisecond))

	// a and b know a dozen members or so: a push-pull from d, which
	// memberlist starts with a member it picks at random, carries d's
	// made-up members too, and a and b must take it (and then j).
	for _, n := range honest[1:] {
		if _, err := d.disco.ml.Join([]string{n.Status().GossipAddr}); err != nil {
			t.Errorf("d's push-pull with %s: %v", n.cfg.Name, err)
		}
	}
	waitFor(t, "a and b to list j", time.Minute, func() bool { return lists(honest[1], "j") && lists(honest[2], "j") })
}

// pushMadeUp pushes d, as a stranger, one push-pull of n made-up members
// named ghost-<from> on, with metadata meta, and reads d's answer.
func pushMadeUp(t *testing.T, d *Node, meta []byte, from, n int) {
	t.Helper()
	pushMadeUpEach(t, d, from, n, func(i int) (string, []byte) { return fmt.Sprintf("ghost-%05d", i), meta })
}

// pushMadeUpEach is pushMadeUp with member i's name and metadata from
// made.
func pushMadeUpEach(t *testing.T, d *Node, from, n int, made func(i int) (name string, meta []byte)) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", d.Status().GossipAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	w := bufio.NewWriterSize(conn, 1<<16)
	_, _ = w.Write(pushPullHeader(t, n, 0))
	enc := codec.NewEncoder(w, &codec.MsgpackHandle{})
	for i := from; i < from+n; i++ {
		name, meta := made(i)
		if err := enc.Encode(gossipPushState{Name: name, Addr: net.IPv4(127, 0, 0, 1).To4(), Port: 9,
			Meta: meta, Incarnation: 1, Vsn: []uint8{1, 5, 2, 0, 0, 0}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, conn) // d's answer, its own state
}
