package node

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// eventRecorder keeps the events a SubscribeFunc callback receives.
type eventRecorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *eventRecorder) add(ev Event) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
}

func (r *eventRecorder) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.evs))
	for i, ev := range r.evs {
		out[i] = ev.Kind.String() + " " + ev.Peer
	}
	return out
}

// waitEvents waits until r holds n events.
func (r *eventRecorder) waitEvents(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got := r.kinds()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("events %v, want %d of them", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSubscribeFuncDeliversInOrder: a function subscriber gets every event
// a channel subscriber gets, in the same order.
func TestSubscribeFuncDeliversInOrder(t *testing.T) {
	c := newCluster(t, false)
	a := c.add("a")
	var fn eventRecorder
	stop, err := a.SubscribeFunc(fn.add)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ch, cancel, err := a.Subscribe(64)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	c.add("b")
	c.add("d")
	c.build("a-b", "b-d")
	c.waitRoute("a", "d", 2)
	c.nodes["b"].Close() // a loses its link and both peers
	want := []string{"link-down b", "peer-down b", "peer-down d"}
	var viaChan []string
	for len(viaChan) < 2+len(want) || !containsAll(viaChan, want) {
		select {
		case ev := <-ch:
			viaChan = append(viaChan, ev.Kind.String()+" "+ev.Peer)
		case <-time.After(time.Minute):
			t.Fatalf("channel subscriber got %v", viaChan)
		}
	}
	got := fn.waitEvents(t, len(viaChan))[:len(viaChan)]
	if !slices.Equal(got, viaChan) {
		t.Fatalf("function subscriber got %v, the channel subscriber %v", got, viaChan)
	}
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// TestSubscribeFuncStopFromCallback: a callback may call its own stop
// function (no deadlock), and it is not called again.
func TestSubscribeFuncStopFromCallback(t *testing.T) {
	c := newCluster(t, false)
	a := c.add("a")
	var (
		calls atomic.Int32
		stopP atomic.Pointer[func()]
	)
	stop, err := a.SubscribeFunc(func(Event) {
		calls.Add(1)
		(*stopP.Load())() // a has no links yet: the first event comes after Store
	})
	if err != nil {
		t.Fatal(err)
	}
	stopP.Store(&stop)
	var all eventRecorder
	stopAll, err := a.SubscribeFunc(all.add)
	if err != nil {
		t.Fatal(err)
	}
	defer stopAll()
	c.add("b")
	c.add("d")
	c.build("a-b", "a-d")
	c.waitRoute("a", "d", 1)
	all.waitEvents(t, 4) // link-up and peer-up of b and d
	if n := calls.Load(); n != 1 {
		t.Fatalf("a callback that stopped itself was called %d times, want 1", n)
	}
}

// TestSubscribeFuncIsBounded: function subscribers count against
// MaxSubscribers with channel ones; stopping one frees its place.
func TestSubscribeFuncIsBounded(t *testing.T) {
	c := newCluster(t, false)
	a := c.add("a") // the test cluster's collector is one subscriber
	var stops []func()
	for i := 1; i < MaxSubscribers; i++ {
		stop, err := a.SubscribeFunc(func(Event) {})
		if err != nil {
			t.Fatalf("subscriber %d of %d: %v", i+1, MaxSubscribers, err)
		}
		stops = append(stops, stop)
	}
	if _, err := a.SubscribeFunc(func(Event) {}); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("a function subscriber beyond MaxSubscribers: %v, want ErrTooManySubscribers", err)
	}
	if _, _, err := a.Subscribe(1); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("a channel subscriber beyond MaxSubscribers: %v, want ErrTooManySubscribers", err)
	}
	stops[0]()
	if _, err := a.SubscribeFunc(func(Event) {}); err != nil {
		t.Fatalf("subscribing after a stop: %v", err)
	}
	if _, err := a.SubscribeFunc(nil); err == nil {
		t.Fatal("a nil function was accepted")
	}
}
