package batch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sink records what deliver was given.
type sink struct {
	mu      sync.Mutex
	batches [][]int
	block   chan struct{} // when set, deliver waits on it (or ctx)
	aborted []int
}

func (s *sink) deliver(ctx context.Context, chunks [][]int) int {
	var items []int
	for _, c := range chunks {
		items = append(items, c...)
	}
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			s.mu.Lock()
			s.aborted = append(s.aborted, items...)
			s.mu.Unlock()
			return 0
		}
	}
	s.mu.Lock()
	s.batches = append(s.batches, append([]int(nil), items...))
	s.mu.Unlock()
	return 0
}

func (s *sink) all() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for _, b := range s.batches {
		out = append(out, b...)
	}
	return out
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func TestFlushTriggers(t *testing.T) {
	tests := []struct {
		name     string
		size     int
		interval time.Duration
		put      int
		flush    bool // call Flush instead of waiting
		wait     time.Duration
	}{
		{name: "by size", size: 5, interval: time.Hour, put: 5, wait: 2 * time.Second},
		{name: "by interval", size: 1000, interval: 20 * time.Millisecond, put: 3, wait: 2 * time.Second},
		{name: "by Flush", size: 1000, interval: time.Hour, put: 3, flush: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &sink{}
			q := New(100, tt.size, tt.interval, s.deliver)
			defer func() { _ = q.Close(context.Background()) }()
			for i := range tt.put {
				if err := q.Put(context.Background(), i, true); err != nil {
					t.Fatal(err)
				}
			}
			if tt.flush {
				if err := q.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
			} else {
				deadline := time.Now().Add(tt.wait)
				for len(s.all()) < tt.put && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
			}
			if diff := cmp.Diff(seq(tt.put), s.all()); diff != "" {
				t.Errorf("delivered mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCloseDrainsAndIsIdempotent(t *testing.T) {
	s := &sink{}
	q := New(10_000, 100, time.Hour, s.deliver)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				if err := q.Put(context.Background(), g*1000+i, true); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if got := len(s.all()); got != 4000 {
		t.Errorf("delivered %d, want 4000", got)
	}
	if err := q.Put(context.Background(), 1, true); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close = %v, want ErrClosed", err)
	}
	if err := q.Flush(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}
}

func TestCloseDeadlineAbortsDelivery(t *testing.T) {
	s := &sink{block: make(chan struct{})} // the sink never finishes on its own
	q := New(100, 10, time.Hour, s.deliver)
	for i := range 25 {
		if err := q.Put(context.Background(), i, true); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := q.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.aborted) != 25 {
		t.Errorf("deliver was handed %d items to give up on, want all 25", len(s.aborted))
	}
}

func TestFullQueue(t *testing.T) {
	s := &sink{block: make(chan struct{})}
	q := New(4, 2, time.Hour, s.deliver)
	for i := range 4 {
		if err := q.Put(context.Background(), i, false); err != nil {
			t.Fatal(err)
		}
	}
	// Two items are being delivered (blocked) and two are queued: the bound counts both.
	if err := q.Put(context.Background(), 9, false); !errors.Is(err, ErrFull) {
		t.Errorf("Put on a full queue without blocking = %v, want ErrFull", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := q.Put(ctx, 9, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("blocking Put on a full queue = %v, want the context's error", err)
	}
	if got := q.Depth(); got != 4 {
		t.Errorf("Depth = %d, want 4", got)
	}
	// Room appears once delivery finishes: a blocked Put then succeeds.
	putErr := make(chan error, 1)
	go func() { putErr <- q.Put(context.Background(), 10, true) }()
	close(s.block)
	if err := <-putErr; err != nil {
		t.Errorf("blocked Put after room appeared = %v", err)
	}
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(s.all()); got != 5 {
		t.Errorf("delivered %d, want 5", got)
	}
}

// TestCloseWithEndedContextDeliversNothing: a Close whose context has already ended hands the
// queue to deliver with a context that has ended too, every time, so nothing is sent after it.
func TestCloseWithEndedContextDeliversNothing(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for range 200 {
		var liveAtFlush []int
		q := New(100, 50, time.Hour, func(ctx context.Context, chunks [][]int) int {
			if ctx.Err() == nil {
				for _, c := range chunks {
					liveAtFlush = append(liveAtFlush, c...)
				}
			}
			return 0
		})
		for i := range 10 {
			if err := q.Put(context.Background(), i, true); err != nil {
				t.Fatal(err)
			}
		}
		if err := q.Close(ended); !errors.Is(err, context.Canceled) {
			t.Fatalf("Close = %v, want context.Canceled", err)
		}
		if diff := cmp.Diff([]int(nil), liveAtFlush); diff != "" {
			t.Fatalf("items handed to deliver with a live context (-want +got):\n%s", diff)
		}
	}
}
