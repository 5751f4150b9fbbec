package stripeapi

import (
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestLimiterSlowsDownOn429: a 429 halves the rate and pauses every request for Retry-After (a
// second without one); answers that are not 429 give the rate back a twentieth at a time, never
// past the configured rate.
func TestLimiterSlowsDownOn429(t *testing.T) {
	type answerOf struct {
		status     int
		retryAfter string
	}
	answer := func(status int, retryAfter string) answerOf { return answerOf{status, retryAfter} }
	tests := []struct {
		name      string
		answers   []answerOf
		wantLimit rate.Limit
		wantPause time.Duration // about
	}{
		{name: "successes keep the rate", answers: []answerOf{answer(200, ""), answer(404, "")}, wantLimit: 100},
		{name: "a 429 halves it and pauses a second", answers: []answerOf{answer(429, "")}, wantLimit: 50, wantPause: time.Second},
		{name: "Retry-After sets the pause", answers: []answerOf{answer(429, "3")}, wantLimit: 50, wantPause: 3 * time.Second},
		{name: "two 429s quarter it", answers: []answerOf{answer(429, ""), answer(429, "")}, wantLimit: 25, wantPause: time.Second},
		{name: "successes give it back, 5 a time", answers: []answerOf{answer(429, ""), answer(200, ""), answer(200, "")}, wantLimit: 60, wantPause: time.Second},
		{name: "never past the configured rate", answers: append([]answerOf{answer(429, "")}, repeat(answer(200, ""), 30)...), wantLimit: 100, wantPause: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLimiter(100)
			for _, a := range tt.answers {
				l.answered(a.status, a.retryAfter)
			}
			if got := l.l.Limit(); got != tt.wantLimit {
				t.Errorf("rate %v, want %v", got, tt.wantLimit)
			}
			pause := time.Until(l.pausedUntil)
			if tt.wantPause == 0 && pause > 0 || tt.wantPause > 0 && (pause <= tt.wantPause-time.Second/2 || pause > tt.wantPause) {
				t.Errorf("paused for %s, want about %s", pause, tt.wantPause)
			}
		})
	}
}

func repeat[T any](v T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}
