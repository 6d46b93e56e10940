package routing

import "time"

func (e *Engine) scheduleHousekeep(at time.Duration) {
	if !e.hkValid || at < e.hkAt {
		e.hkValid, e.hkAt = true, at
	}
}

// housekeep expires stale routes, retries seqno requests and forgets
// destinations that have been unreachable for two expiry periods. It then
// records when it is next needed.
func (e *Engine) housekeep(t time.Duration) {
	e.hkValid = false
	for _, name := range e.sortedOrigins() {
		o := e.origins[name]
		expired := false
		for i := 0; i < len(o.routes); {
			r := &o.routes[i]
			if r.expires != 0 && r.expires <= t {
				o.routes = append(o.routes[:i], o.routes[i+1:]...)
				expired = true
				continue
			}
			if r.expires != 0 {
				e.scheduleHousekeep(r.expires)
			}
			i++
		}
		if expired || o.cand != nil && t >= o.candSince+e.cfg.UpdateInterval {
			e.reselect(t, o)
		}
		if o.cand != nil {
			e.scheduleHousekeep(o.candSince + e.cfg.UpdateInterval)
		}
		e.retryRequest(t, o)
		if o.reqActive {
			e.scheduleHousekeep(o.reqRetry)
		}
		if o.sel == nil && len(o.routes) == 0 {
			gc := o.lostAt + 2*e.cfg.RouteExpiry
			if t >= gc {
				delete(e.origins, name)
				e.originOrder = nil
				continue
			}
			e.scheduleHousekeep(gc)
		}
	}
}
