package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWaitIsCappedAndGrows(t *testing.T) {
	p := Policy{Base: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		name    string
		n       int
		ceiling time.Duration
	}{
		{name: "first retry", n: 1, ceiling: 100 * time.Millisecond},
		{name: "third retry", n: 3, ceiling: 400 * time.Millisecond},
		{name: "capped", n: 10, ceiling: time.Second},
		{name: "no overflow on huge n", n: 1000, ceiling: time.Second},
		{name: "zero is treated as first", n: 0, ceiling: 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var maxSeen time.Duration
			for range 2000 {
				w := p.Wait(tt.n)
				if w < 0 || w > tt.ceiling {
					t.Fatalf("Wait(%d) = %s, outside [0, %s]", tt.n, w, tt.ceiling)
				}
				maxSeen = max(maxSeen, w)
			}
			if maxSeen < tt.ceiling/2 {
				t.Errorf("Wait(%d) never above %s in 2000 draws: no jitter spread", tt.n, maxSeen)
			}
		})
	}
}

func TestSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep on a cancelled context = %v", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep = %v", err)
	}
}
