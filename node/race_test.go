//go:build race

package node

// raceEnabled: the race detector slows QUIC about tenfold; the largest
// scenarios shrink under it.
const raceEnabled = true
