// Package backoff computes retry waits: exponential, capped, with full jitter, and a Sleep that
// gives up when its context ends. The invoice handler and the recorder share it.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff with full jitter: the wait before retry n (from 1) is uniform
// in [0, min(Max, Base·2^(n-1))]. Full jitter spreads the retries of many clients that failed
// together, which is what a 429 from Stripe at the start of a month needs.
type Policy struct {
	Base, Max time.Duration
}

// Wait returns the wait before retry n.
func (p Policy) Wait(n int) time.Duration {
	ceiling := p.Max
	if n < 1 {
		n = 1
	}
	if shift := n - 1; shift < 32 {
		if d := p.Base << shift; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

// Sleep waits d or until ctx ends, and reports ctx's error in the latter case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
