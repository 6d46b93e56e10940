package simulate

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/circuitmesh/circuitmesh/node"
)

// TestEventLogKeepsLatestInOrder: past maxEvents a node's log keeps the
// latest maxEvents events, oldest first, and counts the dropped ones.
func TestEventLogKeepsLatestInOrder(t *testing.T) {
	l := newEventLog("n", &nameTable{}, maxEvents)
	c := &Cluster{members: map[string]*member{"n": {name: "n", events: l}}}
	const total = maxEvents + 1000
	for i := range total {
		ev := node.Event{Kind: node.PeerUp, Peer: fmt.Sprint(i)}
		if i%100 == 0 {
			ev.Err = fmt.Errorf("error %d", i)
		}
		l.add(ev)
	}
	got, err := c.Events("n")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != maxEvents || l.dropped != total-maxEvents {
		t.Fatalf("%d events kept, %d dropped; want %d and %d", len(got), l.dropped, maxEvents, total-maxEvents)
	}
	if want := (maxEvents + 99) / 100; len(l.errs) > want+1 {
		t.Fatalf("%d errors kept for %d events, want at most %d (those of the kept events)", len(l.errs), maxEvents, want+1)
	}
	for i, e := range got {
		n := total - maxEvents + i
		wantErr := ""
		if n%100 == 0 {
			wantErr = fmt.Sprintf("error %d", n)
		}
		if e.Node != "n" || e.Kind != "peer-up" || e.Err != wantErr {
			t.Fatalf("event %d is %+v, want a peer-up of node n with error %q", i, e, wantErr)
		}
		if want := fmt.Sprint(total - maxEvents + i); e.Peer != want {
			t.Fatalf("event %d is of peer %s, want %s (latest events, oldest first)", i, e.Peer, want)
		}
	}
}

// TestEventLogsShrinkPastABudget: a cluster of many nodes keeps fewer
// events per node, so that 5000 nodes' logs stay within a budget; up to
// 1024 nodes each keeps maxEvents.
func TestEventLogsShrinkPastABudget(t *testing.T) {
	for _, tc := range []struct{ nodes, want int }{{1, maxEvents}, {1024, maxEvents}, {5000, 838}, {20000, minEvents}} {
		if got := eventLimit(tc.nodes); got != tc.want {
			t.Errorf("%d nodes keep %d events each, want %d", tc.nodes, got, tc.want)
		}
	}
	l := newEventLog("n", &nameTable{}, 838)
	for i := range 5000 {
		l.add(node.Event{Kind: node.PeerUp, Peer: fmt.Sprint(i)})
	}
	if len(l.events) != 838 || cap(l.events) != 838 {
		t.Errorf("a log of limit 838 holds %d events in room for %d after 5000, want 838 in 838", len(l.events), cap(l.events))
	}
}

// TestEventLogEntryIsCompact: 5000 nodes keep up to twenty million entries.
func TestEventLogEntryIsCompact(t *testing.T) {
	if size := unsafe.Sizeof(logEntry{}); size > 16 {
		t.Fatalf("an event log entry takes %d bytes, want at most 16", size)
	}
}
