package simulate

import (
	"context"
	"errors"
	"sync"
)

// maxParallelLinks bounds the dials of one link or random step in flight
// at once.
const maxParallelLinks = 64

// linkAll links every edge with the same parameters, up to
// maxParallelLinks dials at a time, so that setting up a large topology
// takes about one handshake per node's worth of links rather than one per
// link. Every edge is tried; the error joins the failures.
func (c *Cluster) linkAll(ctx context.Context, edges [][2]string, p LinkParams) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, maxParallelLinks)
	)
	for _, e := range edges {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			lctx, cancel := context.WithTimeout(ctx, redialTimeout)
			defer cancel()
			if err := c.Link(lctx, e[0], e[1], p); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
