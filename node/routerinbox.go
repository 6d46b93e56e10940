package node

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// routerInbox holds the routing messages the links' read loops received,
// and the link costs their probe loops measured, while the router's engine
// was busy (router.input). A read loop also answers its link's probes and
// reads its peer's draining and goodbye frames, and a probe loop is the
// link's dead-peer detector, so neither may wait for the engine: on a
// starved CPU that wait was measured at up to 5.8 s, during which the
// link's later routing messages sat unread (links.Handler: calls must not
// block for long). Whoever holds the router's lock next delivers every
// queued input to the engine before anything else, in arrival order, so
// housekeeping never expires a route ahead of a summary already received
// that refreshes it (the engine's Receive contract: deliver every message
// at hand, then Tick).
type routerInbox struct {
	mu    sync.Mutex
	msgs  []inboxMsg // in arrival order
	bytes int
	spare []inboxMsg // the slice take handed out before, reused
	// queued is len(msgs), read without mu: an engine input finds an
	// empty inbox without taking it.
	queued atomic.Int64
}

// inboxMsg is a neighbour's routing message, or its link's new cost, and
// when it arrived (put).
type inboxMsg struct {
	peer    string
	payload []byte
	cost    links.Cost
	isCost  bool
	at      time.Time
}

// The inbox's bounds. A full inbox makes the read loop that finds it full
// wait for the engine, as every read loop did before there was one; the
// neighbours' receive budgets (routing.ErrOverBudget) are applied when the
// messages are delivered.
const (
	maxInboxMessages = 4096
	maxInboxBytes    = 4 << 20
	// inboxMsgOverhead is what a queued message is counted beyond its
	// payload: its entry and its share of the peer's name.
	inboxMsgOverhead = 64
)

// put queues m, stamped with the time it arrived, or reports false when
// the inbox is full.
func (q *routerInbox) put(m inboxMsg) bool {
	size := len(m.payload) + inboxMsgOverhead
	m.at = time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.msgs) >= maxInboxMessages || q.bytes+size > maxInboxBytes {
		return false
	}
	q.msgs = append(q.msgs, m)
	q.bytes += size
	q.queued.Store(int64(len(q.msgs)))
	return true
}

// take empties the inbox and returns what it held, in arrival order. The
// slice is the inbox's own, valid until the next take: only the holder of
// the router's lock calls it.
func (q *routerInbox) take() []inboxMsg {
	q.mu.Lock()
	defer q.mu.Unlock()
	msgs := q.msgs
	clear(q.spare) // the messages of the take before, delivered by now
	q.msgs, q.spare, q.bytes = q.spare[:0], msgs, 0
	q.queued.Store(0)
	return msgs
}
