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
	l := &eventLog{name: "n"}
	c := &Cluster{members: map[string]*member{"n": {name: "n", events: l}}}
	const total = maxEvents + 1000
	for i := range total {
		l.add(node.Event{Kind: node.PeerUp, Peer: fmt.Sprint(i)})
	}
	got, err := c.Events("n")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != maxEvents || l.dropped != total-maxEvents {
		t.Fatalf("%d events kept, %d dropped; want %d and %d", len(got), l.dropped, maxEvents, total-maxEvents)
	}
	for i, e := range got {
		if e.Node != "n" || e.Kind != "peer-up" || e.Err != "" {
			t.Fatalf("event %d is %+v, want a peer-up of node n without error", i, e)
		}
		if want := fmt.Sprint(total - maxEvents + i); e.Peer != want {
			t.Fatalf("event %d is of peer %s, want %s (latest events, oldest first)", i, e.Peer, want)
		}
	}
}

// TestEventLogEntryIsCompact: a thousand nodes keep millions of entries.
func TestEventLogEntryIsCompact(t *testing.T) {
	if size := unsafe.Sizeof(logEntry{}); size > 40 {
		t.Fatalf("an event log entry takes %d bytes, want at most 40", size)
	}
}
