package node

import (
	"fmt"
	"sync"
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
	closed bool
	lost   map[string]time.Time // peers whose PeerDown is recent, bounded by maxLostPeers
}

// Peers that went down within lostMemory count as recently known: a Dial
// or relay toward one waits RouteWait for routing to bring it back.
const (
	lostMemory   = time.Minute
	maxLostPeers = 4096
)

func newEventHub(m *metrics) *eventHub {
	return &eventHub{m: m, subs: make(map[chan Event]struct{}), lost: make(map[string]time.Time)}
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
		if len(h.lost) >= maxLostPeers {
			for p, at := range h.lost {
				if time.Since(at) >= lostMemory {
					delete(h.lost, p)
				}
			}
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
}

// Subscribe returns a channel of peer and link events with room for buf
// events (default 64, at most 4096) and a cancel function that closes the
// channel. Events that do not fit are dropped for this subscriber; read
// promptly. The channel is closed when the node closes (and is returned
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
	case len(h.subs) >= MaxSubscribers:
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

func (h *eventHub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		close(ch)
		delete(h.subs, ch)
	}
}
