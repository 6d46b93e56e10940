package memlink

import (
	"container/heap"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"
)

// scheduler delivers the Handler calls of every link end of an ordered
// Network (Config.Settle set) from one goroutine, in a total order that
// does not depend on how the Go scheduler interleaved the senders: by
// delivery time, then by the receiving end (node, peer, link number),
// each end's calls in the order they were queued. After each call it
// runs Config.Settle, which returns once everything the call set off has
// run its course, so that the next call sees the same state in every run.
// The goroutine runs only while calls are pending.
type scheduler struct {
	settle func()

	mu      sync.Mutex
	ready   queueHeap       // ends with calls pending, keyed by the first
	wake    chan struct{}   // a call due earlier than the one waited for
	running bool            // the delivery goroutine runs
	quiet   []chan struct{} // closed once no call is due and settle returned
}

// orderKey places a link end's next call in the total order.
type orderKey struct {
	at         time.Time
	node, peer string
	link       uint64 // the pair's link number, counted by the network
}

func (k orderKey) less(o orderKey) bool {
	switch {
	case !k.at.Equal(o.at):
		return k.at.Before(o.at)
	case k.node != o.node:
		return k.node < o.node
	case k.peer != o.peer:
		return k.peer < o.peer
	}
	return k.link < o.link
}

// schedule (re)places e, whose first pending call is due at, in the order.
// e.mu may be held (e.mu is taken before s.mu, never after).
func (s *scheduler) schedule(e *eventQueue, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.key.at = at
	if e.index < 0 {
		heap.Push(&s.ready, e)
	} else {
		heap.Fix(&s.ready, e.index)
	}
	if !s.running {
		s.running = true
		go s.run()
		return
	}
	if s.ready[0] == e {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// quiesce returns once no call is due any more and settle returned after
// the last: the goroutine running the calls starts if it does not run,
// and is woken if it waits for a later call.
func (s *scheduler) quiesce() {
	done := make(chan struct{})
	s.mu.Lock()
	s.quiet = append(s.quiet, done)
	if !s.running {
		s.running = true
		go s.run()
	} else {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
	<-done
}

// run delivers calls until none is pending. It waits for a call due
// later on one timer, reset only when that call's time changed: every
// simulated node's timers share the heap of a synctest bubble, where a
// new timer per wait (and one stopped on every wake) costs a heap update
// each.
func (s *scheduler) run() {
	var t *time.Timer
	var armed time.Time // when t fires; zero: t is not running
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		if s.settle != nil {
			s.settle()
		}
		s.mu.Lock()
		if len(s.ready) == 0 || s.ready[0].key.at.After(time.Now()) {
			// Nothing is due and everything the calls set off has run:
			// the network is quiet at this instant.
			for _, done := range s.quiet {
				close(done)
			}
			s.quiet = nil
		}
		if len(s.ready) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		e := s.ready[0]
		if wait := time.Until(e.key.at); wait > 0 {
			at := e.key.at
			s.mu.Unlock()
			switch {
			case t == nil:
				t = time.NewTimer(wait)
			case !armed.Equal(at):
				t.Reset(wait)
			}
			armed = at
			select {
			case <-t.C:
				armed = time.Time{}
			case <-s.wake:
			}
			continue
		}
		heap.Pop(&s.ready)
		s.mu.Unlock()
		e.deliverOne()
	}
}

// queueHeap orders link ends by their next call; guarded by scheduler.mu.
type queueHeap []*eventQueue

func (h queueHeap) Len() int           { return len(h) }
func (h queueHeap) Less(i, j int) bool { return h[i].key.less(h[j].key) }
func (h queueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *queueHeap) Push(x any) {
	e := x.(*eventQueue)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *queueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*h = old[:len(old)-1]
	return e
}

// path is what SetPath gives the routing payloads between two nodes.
type path struct {
	delay time.Duration
	loss  float64
}

// retransmit is the delay a lost routing payload adds: twice the round
// trip (four one-way delays), at least a millisecond.
func (p path) retransmit() time.Duration {
	return max(4*p.delay, time.Millisecond)
}

// pathRand is the random stream of the direction from → to of the link
// numbered link, derived from the seed alone.
func pathRand(seed uint64, from, to string, link uint64) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(from))
	h.Write([]byte{0})
	h.Write([]byte(to))
	return rand.New(rand.NewPCG(seed^link*0x9e3779b97f4a7c15, h.Sum64()))
}
