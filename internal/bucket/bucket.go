// Package bucket is a token bucket, for the rates the node bounds (link
// handshakes, costly HTTP requests).
package bucket

import "time"

// Bucket holds up to Burst tokens and earns Rate a second. Take one by
// decrementing Tokens after Refill shows at least one.
type Bucket struct {
	Rate, Burst, Tokens float64
	Last                time.Time // when Tokens were last brought up to date
}

// Full is a bucket of that rate and burst, full at now.
func Full(rate, burst float64, now time.Time) Bucket {
	return Bucket{Rate: rate, Burst: burst, Tokens: burst, Last: now}
}

// Refill adds the tokens earned since the last refill; it returns b.
func (b *Bucket) Refill(now time.Time) *Bucket {
	if now.After(b.Last) {
		b.Tokens = min(b.Burst, b.Tokens+now.Sub(b.Last).Seconds()*b.Rate)
		b.Last = now
	}
	return b
}
