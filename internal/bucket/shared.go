package bucket

import "time"

// Shared is a bucket of a whole (a node) that its parts (source
// prefixes) draw on, each with a share of its own: while the whole is
// contended (below half its burst), a part draws at most 1/Div of its
// rate (and 2/Div of its burst, at least one token), so that it takes
// Div parts to keep it spent, while on a quiet whole one part may draw
// all of it.
type Shared struct {
	Bucket
	Div float64
}

// NewShared is a shared bucket of that rate and burst, full at now.
func NewShared(rate, burst, div float64, now time.Time) Shared {
	return Shared{Bucket: Full(rate, burst, now), Div: div}
}

// ShareRate is the rate and burst of one part's share.
func (s *Shared) ShareRate() (rate, burst float64) {
	return s.Rate / s.Div, max(1, 2*s.Burst/s.Div)
}

// Share is a part's share, full at now.
func (s *Shared) Share(now time.Time) Bucket {
	rate, burst := s.ShareRate()
	return Full(rate, burst, now)
}

// OverShare says whether the part with share is held to it now and has
// spent it.
func (s *Shared) OverShare(share *Bucket, now time.Time) bool {
	return share.Refill(now).Tokens < 1 && s.Refill(now).Tokens < s.Burst/2
}

// Allows says whether the part with share may take a token now.
func (s *Shared) Allows(share *Bucket, now time.Time) bool {
	return s.Refill(now).Tokens >= 1 && !s.OverShare(share, now)
}

// Take takes a token from the whole, which must hold one.
func (s *Shared) Take(now time.Time) {
	s.Refill(now).Tokens--
}

// Charge takes a token from a part's share; it may owe up to its burst,
// repaid before it draws again while the whole is contended.
func (s *Shared) Charge(share *Bucket, now time.Time) {
	share.Refill(now)
	share.Tokens = max(share.Tokens-1, -share.Burst)
}
