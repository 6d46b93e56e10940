package node

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
	// held is what each neighbour's routing messages hold of msgs and
	// bytes (link costs are not counted: the node measures them).
	held  map[string]inboxShare
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

// inboxShare is what one neighbour's routing messages hold of the inbox.
type inboxShare struct{ msgs, bytes int }

// The inbox's bounds. A full inbox, or a neighbour's full share of it,
// makes the read loop that finds it full wait for the engine, as every
// read loop did before there was one; the neighbours' receive budgets
// (routing.ErrOverBudget) are applied when the messages are delivered. A
// neighbour's share is a sixteenth of the inbox, as many messages as the
// control queue of its link holds at its end (links.DefaultControlQueue):
// before there were shares, one neighbour flooding tiny routing messages
// filled the whole inbox while the engine was busy, and the summaries of
// the others, arriving after, waited for the lock behind the ticker due
// to expire the routes they refresh
// (TestAttackFloodingNeighbourTakesTheRouterInbox). Fifteen neighbours
// at their shares leave a sixteenth its own.
const (
	maxInboxMessages      = 4096
	maxInboxBytes         = 4 << 20
	maxInboxShareMessages = maxInboxMessages / 16
	maxInboxShareBytes    = maxInboxBytes / 16
	// inboxMsgOverhead is what a queued message is counted beyond its
	// payload: its entry (the peer's name is the link's, not a copy).
	inboxMsgOverhead = int(unsafe.Sizeof(inboxMsg{}))
)

// put queues m, stamped with the time it arrived, or reports false when
// the inbox, or the share of m's neighbour, is full.
func (q *routerInbox) put(m inboxMsg) bool {
	size := len(m.payload) + inboxMsgOverhead
	m.at = time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.msgs) >= maxInboxMessages || q.bytes+size > maxInboxBytes {
		return false
	}
	if !m.isCost {
		s := q.held[m.peer]
		if s.msgs >= maxInboxShareMessages || s.bytes+size > maxInboxShareBytes {
			return false
		}
		if q.held == nil {
			q.held = make(map[string]inboxShare)
		}
		q.held[m.peer] = inboxShare{s.msgs + 1, s.bytes + size}
	}
	q.msgs = append(q.msgs, m)
	q.bytes += size
	q.queued.Store(int64(len(q.msgs)))
	return true
}

// take empties the inbox and returns what it held, in arrival order. The
// slice is the inbox's own, valid until the next take, and its holder
// clears it once the messages are delivered (drainLocked), so that the
// inbox holds no payload it delivered: only the holder of the router's
// lock calls it.
func (q *routerInbox) take() []inboxMsg {
	q.mu.Lock()
	defer q.mu.Unlock()
	msgs := q.msgs
	q.msgs, q.spare, q.bytes = q.spare[:0], msgs, 0
	clear(q.held)
	q.queued.Store(0)
	return msgs
}
