// Package degree samples the link counts of a mesh's nodes for tests: a
// goroutine reads every node's links at a fixed interval and records the
// samples above a bound, so that a test can assert that no node ever held
// more links than its maximum, not only at the end.
package degree

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// maxOver bounds the samples above the bound a Sampler keeps.
const maxOver = 10

// Sampler reads link counts until stopped.
type Sampler struct {
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
	mu    sync.Mutex
	worst int
	over  []string
}

// Sample calls read every interval (it returns each node's link peers)
// until Stop and records the samples where a node had more than bound.
func Sample(every time.Duration, bound int, read func() map[string][]string) *Sampler {
	s := &Sampler{done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-tick.C:
			}
			s.record(read(), bound)
		}
	}()
	return s
}

func (s *Sampler) record(links map[string][]string, bound int) {
	names := make([]string, 0, len(links))
	for name := range links {
		names = append(names, name)
	}
	sort.Strings(names)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range names {
		peers := links[name]
		s.worst = max(s.worst, len(peers))
		if len(peers) > bound && len(s.over) < maxOver {
			s.over = append(s.over, fmt.Sprintf("%s: %d links %s", name, len(peers), strings.Join(peers, " ")))
		}
	}
}

// Stop ends the sampling (it may be called again) and returns the most
// links seen on a node and the first samples above the bound.
func (s *Sampler) Stop() (worst int, over []string) {
	s.once.Do(func() { close(s.done); s.wg.Wait() })
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.worst, s.over
}
