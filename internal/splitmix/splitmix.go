// Package splitmix holds SplitMix64's finalizer, the 64-bit mixer that
// topology ranks names with and routing sums route summaries with.
package splitmix

// Mix is SplitMix64's finalizer: every bit of v moves about half the bits
// of the result, so values that differ only in a few low bits (names
// with a common prefix, a seqno one higher) land far apart.
func Mix(v uint64) uint64 {
	v ^= v >> 30
	v *= 0xbf58476d1ce4e5b9
	v ^= v >> 27
	v *= 0x94d049bb133111eb
	v ^= v >> 31
	return v
}
