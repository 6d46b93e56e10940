package node

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// maxSubscriberBuffer bounds one subscriber's channel.
const maxSubscriberBuffer = 4096

// MaxSubscribers bounds the subscribers of one node.
const MaxSubscribers = 1024

// eventHub fans events out to subscribers without ever blocking the
// publisher: an event that does not fit a subscriber's buffer is dropped
// for that subscriber and counted.
type eventHub struct {
	m      *metrics
	mu     sync.Mutex
	subs   map[chan Event]struct{}
	funcs  map[*funcSub]struct{}
	closed bool
	lost   map[string]time.Time // peers whose PeerDown is recent, bounded by maxLostPeers
	// lostSweep is when the next entry of a full lost table expires:
	// before it, a sweep would find nothing to forget. (Sweeping on every
	// PeerDown made a 5000-node mesh that lost every peer at once, as at
	// the end of a simulation, walk 4,096 entries per event.)
	lostSweep time.Time
	sweeps    int // sweeps of the lost table, for tests
}

// Peers that went down within lostMemory count as recently known: a Dial
// or relay toward one waits RouteWait for routing to bring it back.
const (
	lostMemory   = time.Minute
	maxLostPeers = 4096
)

func newEventHub(m *metrics) *eventHub {
	return &eventHub{m: m, subs: make(map[chan Event]struct{}), funcs: make(map[*funcSub]struct{}),
		lost: make(map[string]time.Time)}
}

// recentlyLost reports whether peer went down within lostMemory and has
// not come back since.
func (h *eventHub) recentlyLost(peer string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	at, ok := h.lost[peer]
	return ok && time.Since(at) < lostMemory
}

func (h *eventHub) noteLocked(ev Event) {
	switch ev.Kind {
	case PeerUp:
		delete(h.lost, ev.Peer)
	case PeerDown:
		if now := time.Now(); len(h.lost) >= maxLostPeers && !now.Before(h.lostSweep) {
			h.sweeps++
			next := now.Add(lostMemory)
			for p, at := range h.lost {
				switch until := at.Add(lostMemory); {
				case !now.Before(until):
					delete(h.lost, p)
				case until.Before(next):
					next = until
				}
			}
			h.lostSweep = next
		}
		if len(h.lost) < maxLostPeers {
			h.lost[ev.Peer] = ev.Time
		}
	}
}

func (h *eventHub) publish(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.noteLocked(ev)
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
			h.m.eventsDropped.Inc()
		}
	}
	for s := range h.funcs {
		if s.stopped.Load() {
			delete(h.funcs, s)
			continue
		}
		s.fn(ev)
	}
}

// Subscribe returns a channel of peer and link events with room for buf
// events (default 64, at most 4096) and a cancel function that closes the
// channel. Events that do not fit are dropped for this subscriber; read
// promptly. A peer's PeerUp and PeerDown come at most 8 at once, then one
// a second: changes beyond are held back and the peer's state then is
// reported once, if it differs from the last reported. A PeerDown of a
// peer that a neighbour still advertises (routing awaits a new seqno
// from it) comes only if the route is not back within
// Config.RouteWait, or once no neighbour advertises the peer; if it is
// back, neither event comes. The channel is closed when the node closes (and is returned
// already closed by a closed node). With MaxSubscribers subscribers already,
// Subscribe returns an error wrapping ErrTooManySubscribers.
func (n *Node) Subscribe(buf int) (<-chan Event, func(), error) {
	if buf <= 0 {
		buf = 64
	}
	if buf > maxSubscriberBuffer {
		buf = maxSubscriberBuffer
	}
	h := n.events
	ch := make(chan Event, buf)
	h.mu.Lock()
	switch {
	case h.closed:
		close(ch)
	case h.subscribersLocked() >= MaxSubscribers:
		h.mu.Unlock()
		return nil, func() {}, fmt.Errorf("subscribe to %s: %w (%d)", n.cfg.Name, ErrTooManySubscribers, MaxSubscribers)
	default:
		h.subs[ch] = struct{}{}
	}
	h.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if _, ok := h.subs[ch]; ok {
				delete(h.subs, ch)
				close(ch)
			}
		})
	}, nil
}

// funcSub is one SubscribeFunc subscriber.
type funcSub struct {
	fn      func(Event)
	stopped atomic.Bool
}

// SubscribeFunc calls fn with every peer and link event of the node, in
// the order the node publishes them, one call at a time, with no buffer in
// between: nothing is dropped, and nothing is held for the subscriber but
// fn itself. It returns a stop function: after stop returns, no event
// published later reaches fn (one being delivered at that moment, from
// another goroutine, may still reach it). Calls end when the node closes.
// With MaxSubscribers subscribers already (channels and functions
// together), SubscribeFunc returns an error wrapping
// ErrTooManySubscribers.
//
// fn runs on the goroutine that publishes the event, while the node holds
// its event lock and the lock of what changed (its routing for peer
// events, its link table for link events). So fn must return quickly
// (copy what it needs and return: the node's routing waits for it) and
// must not call methods of the node, nor block on anything that waits for
// the node. It may call its own stop function, and any other
// subscriber's: stop only marks the subscriber, which the next event then
// removes, and never takes a lock, so it cannot deadlock with a call under
// way.
func (n *Node) SubscribeFunc(fn func(Event)) (stop func(), err error) {
	if fn == nil {
		return nil, fmt.Errorf("subscribe to %s: nil function", n.cfg.Name)
	}
	h := n.events
	s := &funcSub{fn: fn}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return func() {}, nil
	}
	if h.subscribersLocked() >= MaxSubscribers {
		return nil, fmt.Errorf("subscribe to %s: %w (%d)", n.cfg.Name, ErrTooManySubscribers, MaxSubscribers)
	}
	h.funcs[s] = struct{}{}
	return func() { s.stopped.Store(true) }, nil
}

// subscribersLocked counts the live subscribers, forgetting stopped
// function subscribers first. h.mu is held.
func (h *eventHub) subscribersLocked() int {
	for s := range h.funcs {
		if s.stopped.Load() {
			delete(h.funcs, s)
		}
	}
	return len(h.subs) + len(h.funcs)
}

func (h *eventHub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		close(ch)
		delete(h.subs, ch)
	}
	clear(h.funcs)
}
