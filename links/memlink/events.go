package memlink

import (
	"fmt"
	"sync"

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
}

// eventQueue delivers one link end's Handler calls in order from a
// goroutine that runs only while events are pending. At most limit routing
// payloads wait; cost changes are coalesced; nothing follows LinkDown.
type eventQueue struct {
	ep    *endpoint
	h     links.Handler
	limit int

	mu      sync.Mutex
	q       []event
	routing int  // routing events in q
	cost    int  // index of a pending cost event in q, or -1
	running bool // a goroutine is draining q
	ended   bool // LinkDown queued
}

func (e *eventQueue) init(ep *endpoint, h links.Handler, limit int) {
	e.ep, e.h, e.limit, e.cost = ep, h, limit, -1
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
		if e.routing >= e.limit {
			return false, fmt.Errorf("routing payload to %s dropped (%d queued): %w", e.ep.t.name, e.routing, links.ErrQueueFull)
		}
		e.routing++
	case evCost:
		if e.cost >= 0 {
			e.q[e.cost].quality = ev.quality
			return false, nil
		}
		e.cost = len(e.q)
	case evDown:
		e.ended = true
	}
	e.q = append(e.q, ev)
	if !e.running {
		e.running = true
		e.ep.t.drains.Add(1)
		go e.drain()
	}
	return false, nil
}

func (e *eventQueue) drain() {
	defer e.ep.t.drains.Done()
	for {
		e.mu.Lock()
		if len(e.q) == 0 {
			e.running = false
			e.q = nil
			e.mu.Unlock()
			return
		}
		ev := e.q[0]
		e.q[0] = event{}
		e.q = e.q[1:]
		switch {
		case ev.kind == evRouting:
			e.routing--
		case e.cost == 0:
			e.cost = -1
		}
		if e.cost > 0 {
			e.cost--
		}
		e.mu.Unlock()
		switch ev.kind {
		case evUp:
			e.h.LinkUp(e.ep)
		case evRouting:
			e.h.Routing(e.ep, ev.payload)
		case evCost:
			e.h.CostChanged(e.ep, ev.quality)
		case evDown:
			e.h.LinkDown(e.ep, ev.err)
		}
	}
}
