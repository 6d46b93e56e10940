package links

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// Redial backoff for Keep.
const (
	keepMinBackoff = 100 * time.Millisecond
	keepMaxBackoff = 10 * time.Second
	// keepGoodLink is how long a link must have lived to reset the backoff.
	keepGoodLink = 2 * time.Second
)

// Keep maintains a static link to addr: it dials now and, whenever the
// link is down or the dial fails, redials with exponential backoff (100 ms
// doubling to 10 s, with jitter), starting again from 100 ms after a link
// that stayed up for 2 s. Its dials carry FeatureStatic. stop ends the redialling and waits for it; it does
// not close a live link. Keep on a closed transport does nothing.
func (t *QUICTransport) Keep(addr string) (stop func()) {
	if !t.enter() {
		return func() {}
	}
	ctx, cancel := context.WithCancel(t.ctx)
	done := make(chan struct{})
	go func() {
		defer t.wg.Done()
		defer close(done)
		t.keep(ctx, addr)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}

func (t *QUICTransport) keep(ctx context.Context, addr string) {
	var b backoff
	failures := 0
	for {
		l, err := t.Dial(WithStatic(ctx), addr)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The first failure of a run is news; the retries are not. A
			// refusal says why at WARN, once a minute per address.
			failures++
			switch {
			case errors.Is(err, ErrRefused):
				t.refusals.Warn("out:"+addr, "link refused", "addr", addr, "err", err)
			case failures == 1:
				t.cfg.Logger.Info("static link down, redialling with backoff", "addr", addr, "err", err)
			default:
				t.cfg.Logger.Debug("static link dial failed", "addr", addr, "attempt", failures, "err", err)
			}
		} else {
			t.cfg.Logger.Info("static link up", "addr", addr, "peer", l.Peer(), "failed_attempts", failures)
			failures = 0
			up := time.Now()
			select {
			case <-ctx.Done():
				return
			case <-l.Done():
			}
			if time.Since(up) >= keepGoodLink {
				b.reset()
			} else if ctx.Err() == nil {
				// A peer that closes the link at once (e.g. at its
				// maximum of links) says why at WARN, once a minute.
				t.refusals.Warn("out:"+addr, "static link closed soon after it came up", "addr", addr, "peer", l.Peer(), "err", l.Err())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.next()):
		}
	}
}

// backoff is exponential backoff with jitter: each wait is drawn from
// [d/2, d], and d doubles from keepMinBackoff up to keepMaxBackoff.
type backoff struct{ d time.Duration }

func (b *backoff) next() time.Duration {
	if b.d == 0 {
		b.d = keepMinBackoff
	}
	wait := b.d/2 + rand.N(b.d/2+1)
	b.d = min(2*b.d, keepMaxBackoff)
	return wait
}

func (b *backoff) reset() { b.d = 0 }
