package stripeapi

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter is one budget of Stripe requests a second, shared by every request a client sends
// (each page of a list, each retry). A 429 halves the rate and pauses every request for the
// Retry-After Stripe asks (a second without one); each request answered otherwise gives back a
// twentieth of the configured rate, so the rate recovers within a few seconds of quiet.
type Limiter struct {
	max rate.Limit
	l   *rate.Limiter

	mu          sync.Mutex
	pausedUntil time.Time
	throttled   int // 429s seen
}

// NewLimiter allows perSecond requests a second, in bursts of up to perSecond.
func NewLimiter(perSecond int) *Limiter {
	return &Limiter{max: rate.Limit(perSecond), l: rate.NewLimiter(rate.Limit(perSecond), perSecond)}
}

// Throttled returns how many 429s the limiter has seen.
func (l *Limiter) Throttled() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.throttled
}

// wait blocks until a request may be sent, or ctx ends.
func (l *Limiter) wait(ctx context.Context) error {
	l.mu.Lock()
	pause := time.Until(l.pausedUntil)
	l.mu.Unlock()
	if pause > 0 {
		t := time.NewTimer(pause)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return l.l.Wait(ctx)
}

// answered adapts the rate to an answer's status and Retry-After header.
func (l *Limiter) answered(status int, retryAfter string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if status != http.StatusTooManyRequests {
		if cur := l.l.Limit(); cur < l.max {
			l.l.SetLimit(min(cur+l.max/20, l.max))
		}
		return
	}
	l.throttled++
	l.l.SetLimit(max(l.l.Limit()/2, 1))
	pause := time.Second
	if s, err := strconv.Atoi(retryAfter); err == nil && s > 0 {
		pause = time.Duration(s) * time.Second
	}
	if until := time.Now().Add(pause); until.After(l.pausedUntil) {
		l.pausedUntil = until
	}
}
