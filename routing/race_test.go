//go:build race

package routing_test

// raceEnabled: the race detector slows the engine about tenfold, so the
// property tests use medium graphs instead of the full 1000 nodes.
const raceEnabled = true
