package routing

import "slices"

// RequestsInProgress returns the origins for which e has a seqno request
// in progress, sorted, for the tests of package routing_test.
func RequestsInProgress(e *Engine) []string {
	var out []string
	for o := range e.origins.all() {
		if e.reqActive(o) {
			out = append(out, e.nameOf(o))
		}
	}
	slices.Sort(out)
	return out
}
