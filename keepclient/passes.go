package keepclient

import (
	mrand "math/rand/v2"
	"time"
)

// passRule says when a write or a read makes another pass over its
// services, and how long it pauses before it. The plans apply it
// (writePlan.again, readPlan.again); it reads no clock, and its
// randomness is passed in (backoff.rand).
type passRule struct {
	max int // passes at most (Options.MaxPasses)
	// refresh: the service list is refreshed before every later pass
	// (Options.Refresh), which may add services worth a pass of their own.
	refresh bool
	wait    backoff // the pauses between passes
}

// passRule returns the rule of c's writes and reads, with its own
// randomised pauses.
func (c *Client) passRule() passRule {
	return passRule{
		max:     c.opts.MaxPasses,
		refresh: c.opts.Refresh != nil,
		wait:    newBackoff(c.opts.RetryDelay, mrand.N[time.Duration]),
	}
}

// another reports whether, after pass passes, another is worth making:
// while passes remain, when some service is worth asking again
// (retryable) or a refresh may add services.
func (r passRule) another(pass int, retryable bool) bool {
	return pass < r.max && (retryable || r.refresh)
}

// backoff yields the pauses between the passes of a write or a read: each
// uniform in [1ms, 1ms+limit), where limit starts at base and doubles
// after every pause, up to ten times base. It reads no clock; rand is
// the source of randomness (rand(n) returns a value in [0, n)).
type backoff struct {
	base, limit time.Duration
	rand        func(time.Duration) time.Duration
}

func newBackoff(base time.Duration, rand func(time.Duration) time.Duration) backoff {
	return backoff{base: base, limit: base, rand: rand}
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
