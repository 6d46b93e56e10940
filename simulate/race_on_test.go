//go:build race

package simulate

// raceOn: the race detector multiplies a large scenario's memory by 5–10.
const raceOn = true
