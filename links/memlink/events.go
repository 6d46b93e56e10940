package memlink

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

type eventKind uint8

const (
	evUp eventKind = iota
	evRouting
	evCost
	evDown
)

type event struct {
	kind    eventKind
	payload []byte
	quality links.Quality
	err     error
	at      time.Time // when it is due (ordered networks only)
}

// eventQueue delivers one link end's Handler calls in order from a
// goroutine that runs only while events are pending. At most limit routing
// payloads of at most maxBytes in all wait; cost changes are coalesced;
// nothing follows LinkDown.
type eventQueue struct {
	ep       *endpoint
	h        links.Handler
	limit    int
	maxBytes int

	mu      sync.Mutex
	q       []event
	routing int  // routing events in q
	bytes   int  // their payloads' bytes
	cost    int  // index of a pending cost event in q, or -1
	running bool // a goroutine is draining q, or q is scheduled
	ended   bool // LinkDown queued

	// On an ordered network (sched set) one goroutine of the scheduler
	// delivers every end's calls; key and index (guarded by sched.mu) place
	// this end among the others. Routing payloads towards this end are
	// delayed and lost per path (loss drawn from rng).
	sched *scheduler
	key   orderKey
	index int
	path  path
	rng   *rand.Rand
	last  time.Time // when the last queued call is due
}

func (e *eventQueue) init(ep *endpoint, h links.Handler, limit, maxBytes int) {
	e.ep, e.h, e.limit, e.maxBytes, e.cost, e.index = ep, h, limit, maxBytes, -1, -1
}

// post queues ev. It returns links.ErrQueueFull (wrapped) when a routing
// payload does not fit, and ended reports that LinkDown was already queued.
func (e *eventQueue) post(ev event) (ended bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ended {
		return true, nil
	}
	switch ev.kind {
	case evRouting:
		if e.routing >= e.limit || e.routing > 0 && e.bytes+len(ev.payload) > e.maxBytes {
			e.ep.t.n.inFlight.dropped.Add(1)
			return false, fmt.Errorf("routing payload of %d bytes to %s dropped (%d queued, %d bytes): %w",
				len(ev.payload), e.ep.t.name, e.routing, e.bytes, links.ErrQueueFull)
		}
		e.routing++
		e.bytes += len(ev.payload)
		e.ep.t.n.inFlight.add(1, len(ev.payload))
	case evCost:
		if e.cost >= 0 {
			e.q[e.cost].quality = ev.quality
			return false, nil
		}
		e.cost = len(e.q)
	case evDown:
		e.ended = true
		if e.sched != nil {
			e.dropRouting()
		}
	}
	if e.sched != nil {
		ev.at = e.due(ev.kind)
	}
	e.q = append(e.q, ev)
	if !e.running {
		e.running = true
		e.ep.t.drains.Add(1)
		if e.sched != nil {
			e.sched.schedule(e, e.q[0].at)
		} else {
			go e.drain()
		}
	} else if e.sched != nil && ev.kind == evDown {
		e.sched.schedule(e, e.q[0].at) // the routing queued before it is gone
	}
	return false, nil
}

// due is when a call of kind queued now is delivered on an ordered
// network: at once, but a routing payload after its path's delay, and
// after one retransmission delay more for each time it is lost; never
// before the calls queued earlier (the payloads travel in order, as on a
// QUIC stream). e.mu is held.
func (e *eventQueue) due(kind eventKind) time.Time {
	at := time.Now()
	if kind == evRouting {
		at = at.Add(e.path.delay)
		for e.path.loss > 0 && e.rng.Float64() < e.path.loss {
			at = at.Add(e.path.retransmit())
		}
	}
	if at.Before(e.last) {
		at = e.last
	}
	e.last = at
	return at
}

// dropRouting discards the routing payloads still in flight towards a
// link end that is going down: the link lost them. e.mu is held.
func (e *eventQueue) dropRouting() {
	kept := e.q[:0]
	e.cost = -1
	for _, ev := range e.q {
		if ev.kind == evRouting {
			continue
		}
		if ev.kind == evCost {
			e.cost = len(kept)
		}
		kept = append(kept, ev)
	}
	clear(e.q[len(kept):])
	e.ep.t.n.inFlight.add(-e.routing, -e.bytes)
	e.q, e.routing, e.bytes = kept, 0, 0
	e.last = time.Time{}
	for _, ev := range e.q {
		e.last = ev.at
	}
}

// deliverOne makes the first pending call of an ordered network's link
// end; the scheduler calls it when the call is due.
func (e *eventQueue) deliverOne() {
	e.mu.Lock()
	if len(e.q) > 0 && e.q[0].at.After(time.Now()) {
		e.sched.schedule(e, e.q[0].at) // its first call is not due yet
		e.mu.Unlock()
		return
	}
	ev, ok := e.pop()
	e.mu.Unlock()
	if ok {
		e.call(ev)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.q) == 0 {
		e.running = false
		e.q = nil
		e.ep.t.drains.Done()
		return
	}
	e.sched.schedule(e, e.q[0].at)
}

// pop removes the first pending call. e.mu is held.
func (e *eventQueue) pop() (event, bool) {
	if len(e.q) == 0 {
		return event{}, false
	}
	ev := e.q[0]
	e.q[0] = event{}
	e.q = e.q[1:]
	switch {
	case ev.kind == evRouting:
		e.routing--
		e.bytes -= len(ev.payload)
		e.ep.t.n.inFlight.add(-1, -len(ev.payload))
	case e.cost == 0:
		e.cost = -1
	}
	if e.cost > 0 {
		e.cost--
	}
	return ev, true
}

func (e *eventQueue) call(ev event) {
	switch ev.kind {
	case evUp:
		e.h.LinkUp(e.ep)
	case evRouting:
		if e.sched != nil && e.ep.conn.severed.Load() {
			return // severed in flight
		}
		e.h.Routing(e.ep, ev.payload)
	case evCost:
		e.h.CostChanged(e.ep, ev.quality)
	case evDown:
		e.h.LinkDown(e.ep, ev.err)
	}
}

func (e *eventQueue) drain() {
	defer e.ep.t.drains.Done()
	for {
		e.mu.Lock()
		ev, ok := e.pop()
		if !ok {
			e.running = false
			e.q = nil
			e.mu.Unlock()
			return
		}
		e.mu.Unlock()
		e.call(ev)
	}
}
