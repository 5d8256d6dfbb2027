package keepclient

import "time"

// backoff yields the pauses between the passes of a write or a read: each
// uniform in [1ms, 1ms+limit), where limit starts at base and doubles
// after every pause, up to ten times base. It reads no clock; rand is
// the source of randomness (rand(n) returns a value in [0, n)).
type backoff struct {
	base, limit time.Duration
	rand        func(time.Duration) time.Duration
}

func newBackoff(base time.Duration, rand func(time.Duration) time.Duration) *backoff {
	return &backoff{base: base, limit: base, rand: rand}
}

// next returns the next pause, at least floor (a busy server's
// Retry-After).
func (b *backoff) next(floor time.Duration) time.Duration {
	d := time.Millisecond
	if b.limit > 0 {
		d += b.rand(b.limit)
	}
	b.limit = min(2*b.limit, 10*b.base)
	return max(d, floor)
}
