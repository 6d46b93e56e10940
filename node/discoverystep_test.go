package node

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/hashicorp/serf/coordinate"

	"github.com/circuitmesh/circuitmesh/node/topology"
)

// TestStepScratchEmptiedOnPut: the policy step's tables come from a pool
// that the steps of every node of a process share; put must leave none of
// one node's members for the next step, of this node or another, to see
// (a member left in alive would be planned for as alive, one left in
// reachable as reached).
func TestStepScratchEmptiedOnPut(t *testing.T) {
	s := stepScratchPool.Get().(*stepScratch)
	s.alive["m"] = Member{Name: "m"}
	s.reachable["m"] = true
	s.routes["m"] = routeHop{cost: 1, next: "p"}
	s.route["m"], s.excess["p"] = 1, 1
	s.names = append(s.names, "m", "n")
	s.members = append(s.members, topology.Member{Name: "m"})
	names, members := s.names, s.members
	s.put()
	if len(s.alive)+len(s.reachable)+len(s.routes)+len(s.route)+len(s.excess) != 0 {
		t.Fatalf("tables after put: alive %v, reachable %v, routes %v, route %v, excess %v", s.alive, s.reachable, s.routes, s.route, s.excess)
	}
	if len(s.names)+len(s.members) != 0 {
		t.Fatalf("slices after put: names %q, members %v", s.names, s.members)
	}
	if names[0] != "" || names[1] != "" || members[0].Name != "" {
		t.Fatalf("put keeps members alive in the slices' arrays: %q, %v", names, members)
	}
}

// TestVerifiedMetadataCopiesChangeNothing: NotifyAlive records verified
// metadata for every copy of an alive message; a copy of the metadata the
// entry holds leaves it as it is (its gossip address, held state), and
// newer verified metadata still replaces it (link address, coordinate).
func TestVerifiedMetadataCopiesChangeNothing(t *testing.T) {
	d := &discovery{n: &Node{cfg: Config{Name: "a", Mesh: "m"}}, members: map[string]gossipMember{},
		verified: map[string]verifiedMeta{}}
	first, _ := json.Marshal(memberMeta{Link: "10.0.0.1:1", Mesh: "m", TS: 1})
	coord, _ := json.Marshal(coordWire(coordinate.NewCoordinate(coordConfig)))
	second, _ := json.Marshal(memberMeta{Link: "10.0.0.2:1", Mesh: "m", TS: 2, Coord: coord})
	d.verified["b"] = verifiedMeta{raw: first, ts: 1}
	d.setMember("b", "10.0.0.1:7946", first, fromMemberlist)
	gm := d.members["b"]
	gm.held, gm.keep = true, time.Unix(100, 0)
	d.members["b"] = gm
	d.setMember("b", "", bytes.Clone(first), fromVerified)
	if got := d.members["b"]; got.gossip != "10.0.0.1:7946" || !got.held || !got.keep.Equal(gm.keep) || got.LinkAddr != "10.0.0.1:1" || !got.verified {
		t.Fatalf("a copy of the verified metadata changed the entry: %+v, was %+v", got, gm)
	}
	d.verified["b"] = verifiedMeta{raw: second, ts: 2}
	d.setMember("b", "", second, fromVerified)
	got := d.members["b"]
	if got.LinkAddr != "10.0.0.2:1" || got.coord == nil || !got.verified || !bytes.Equal(got.raw, second) {
		t.Fatalf("newer verified metadata not taken: link %q, coordinate %v, verified %v", got.LinkAddr, got.coord, got.verified)
	}
	if got.gossip != "10.0.0.1:7946" || !got.held {
		t.Fatalf("newer verified metadata lost the entry's gossip address or held state: %+v", got)
	}
}
