package batch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// item is a stream test's unit: the stream it goes to and its number.
type item struct {
	key string
	n   int
}

// recorder is a Streams sink: it records what each stream sent, in order, and can hold the
// sends of one stream until released (or the send's context ends).
type recorder struct {
	mu       sync.Mutex
	sent     map[string][]int
	aborted  map[string][]int
	hold     string        // the stream whose sends wait on release
	release  chan struct{} // closed to let hold's sends go
	released atomic.Int64
}

func newRecorder(hold string) *recorder {
	return &recorder{sent: map[string][]int{}, aborted: map[string][]int{}, hold: hold, release: make(chan struct{})}
}

func (r *recorder) send(ctx context.Context, batch []item) {
	into := r.sent
	if batch[0].key == r.hold {
		select {
		case <-r.release:
		case <-ctx.Done():
			into = r.aborted
		}
	}
	if ctx.Err() != nil {
		into = r.aborted
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, it := range batch {
		into[it.key] = append(into[it.key], it.n)
	}
}

func (r *recorder) snapshot() (sent, aborted map[string][]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sent, aborted = map[string][]int{}, map[string][]int{}
	for k, v := range r.sent {
		sent[k] = append([]int(nil), v...)
	}
	for k, v := range r.aborted {
		aborted[k] = append([]int(nil), v...)
	}
	return sent, aborted
}

// cutTwo cuts batches of at most two items.
func cutTwo(items []item) int { return min(2, len(items)) }

func items(key string, from, to int) []item {
	var out []item
	for n := from; n < to; n++ {
		out = append(out, item{key, n})
	}
	return out
}

func ints(from, to int) []int {
	var out []int
	for n := from; n < to; n++ {
		out = append(out, n)
	}
	return out
}

func TestStreamsIsolateAHeldStream(t *testing.T) {
	r := newRecorder("sick")
	ss := NewStreams(cutTwo, r.send, func(n int) { r.released.Add(int64(n)) })
	ss.Add("sick", 0, items("sick", 0, 5))
	ss.Add("a", 0, items("a", 0, 5))
	ss.Add("b", 0, items("b", 0, 3))
	ss.Add("a", 0, items("a", 5, 9))

	// The healthy streams finish while the sick one holds its first batch.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		sent, _ := r.snapshot()
		if len(sent["a"]) == 9 && len(sent["b"]) == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("healthy streams did not finish while another was held: %v", sent)
		}
		time.Sleep(time.Millisecond)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancelShort()
	if err := ss.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait with a stream held = %v, want context.DeadlineExceeded", err)
	}

	close(r.release)
	if err := ss.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	sent, _ := r.snapshot()
	want := map[string][]int{"sick": ints(0, 5), "a": ints(0, 9), "b": ints(0, 3)}
	if diff := cmp.Diff(want, sent); diff != "" {
		t.Errorf("sent, in order (-want +got):\n%s", diff)
	}
	if got := r.released.Load(); got != 17 {
		t.Errorf("released %d items, want 17", got)
	}
	if err := ss.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStreamsWaitIsABarrier(t *testing.T) {
	r := newRecorder("a")
	ss := NewStreams(cutTwo, r.send, func(int) {})
	ss.Add("a", 0, items("a", 0, 4))
	waited := make(chan error, 1)
	go func() { waited <- ss.Wait(context.Background()) }()
	time.Sleep(20 * time.Millisecond)
	select {
	case err := <-waited:
		t.Fatalf("Wait returned %v before the items added before it were sent", err)
	default:
	}
	close(r.release)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if sent, _ := r.snapshot(); len(sent["a"]) != 4 {
		t.Errorf("Wait returned with %v sent, want all 4", sent["a"])
	}
	if err := ss.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestStreamsClose(t *testing.T) {
	tests := []struct {
		name        string
		hold        string        // a stream whose sends wait until Close's context ends
		timeout     time.Duration // Close's context's timeout
		wantErr     error
		wantSent    map[string][]int
		wantAborted map[string][]int
	}{
		{
			name: "drains", timeout: 10 * time.Second,
			wantSent:    map[string][]int{"a": ints(0, 7), "b": ints(0, 3)},
			wantAborted: map[string][]int{},
		},
		{
			name: "aborts a held stream when its context ends", hold: "a", timeout: 30 * time.Millisecond,
			wantErr:     context.DeadlineExceeded,
			wantSent:    map[string][]int{"b": ints(0, 3)},
			wantAborted: map[string][]int{"a": ints(0, 7)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRecorder(tt.hold)
			var released atomic.Int64
			ss := NewStreams(cutTwo, r.send, func(n int) { released.Add(int64(n)) })
			ss.Add("a", 0, items("a", 0, 7))
			ss.Add("b", 0, items("b", 0, 3))
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			if err := ss.Close(ctx); !errors.Is(err, tt.wantErr) {
				t.Errorf("Close = %v, want %v", err, tt.wantErr)
			}
			sent, aborted := r.snapshot()
			if diff := cmp.Diff(tt.wantSent, sent); diff != "" {
				t.Errorf("sent (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantAborted, aborted); diff != "" {
				t.Errorf("aborted (-want +got):\n%s", diff)
			}
			if got := released.Load(); got != 10 {
				t.Errorf("released %d items, want all 10", got)
			}
		})
	}
}

// TestStreamsKeepBoundedBuffers: a stream that is never empty (a batch added for each one
// sent) compacts its buffer instead of growing it.
func TestStreamsKeepBoundedBuffers(t *testing.T) {
	var ss *Streams[item]
	var added atomic.Int64
	send := func(_ context.Context, batch []item) {
		if n := added.Add(1); n < 10_000 {
			ss.Add("a", 0, items("a", int(n)*2, int(n)*2+2))
		}
	}
	ss = NewStreams(cutTwo, send, func(int) {})
	ss.Add("a", 0, items("a", 0, 6))
	for added.Load() < 10_000 {
		time.Sleep(time.Millisecond)
	}
	if err := ss.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if c := cap(ss.streams["a"].parts[0].items); c > 64 {
		t.Errorf("buffer capacity %d after 10,000 batches through a stream never empty, want a few batches' worth", c)
	}
}

// TestStreamsWaitersDoNotStealWakeUps: two Waits on one stream, the first satisfied before the
// second; the second still wakes when its items are sent (the first must not turn the stream's
// wake-up off for it).
func TestStreamsWaitersDoNotStealWakeUps(t *testing.T) {
	for iter := range 300 {
		gate := make(chan struct{}, 2)
		ss := NewStreams(func([]int) int { return 1 }, func(context.Context, []int) { <-gate }, func(int) {})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ss.Add("a", 0, []int{0})
		errs := make(chan error, 2)
		go func() { errs <- ss.Wait(ctx) }() // waits for item 0
		time.Sleep(50 * time.Microsecond)
		ss.Add("a", 0, []int{1})
		go func() { errs <- ss.Wait(ctx) }() // waits for items 0 and 1
		time.Sleep(50 * time.Microsecond)
		gate <- struct{}{}
		time.Sleep(200 * time.Microsecond)
		gate <- struct{}{}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("iteration %d: Wait = %v after every item was sent", iter, err)
			}
		}
		cancel()
		if err := ss.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStreamsCatchUpInFullBatches: a stream that fell behind (its sink held while many small
// adds of two partitions arrived) sends each partition's backlog in full batches, the partitions
// taking turns, each partition's items in order.
func TestStreamsCatchUpInFullBatches(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var batches [][]item
	send := func(_ context.Context, b []item) {
		<-release
		mu.Lock()
		batches = append(batches, append([]item(nil), b...))
		mu.Unlock()
	}
	cut := func(its []item) int { return min(len(its), 100) }
	ss := NewStreams(cut, send, func(int) {})
	for round := range 150 { // 150 flushes of 2 items of each of two partitions
		ss.Add("a", 1, items("p1", 2*round, 2*round+2))
		ss.Add("a", 2, items("p2", 2*round, 2*round+2))
	}
	close(release)
	if err := ss.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The first batch was cut before the backlog built up; every later one is full but the last
	// of each partition: 300 items of each in 100s.
	var sizes []int
	seen := map[string][]int{}
	for _, b := range batches {
		sizes = append(sizes, len(b))
		for _, it := range b {
			seen[it.key] = append(seen[it.key], it.n)
		}
	}
	if len(batches) > 8 {
		t.Errorf("%d batches of sizes %v for 600 items: the backlog went out in small batches", len(batches), sizes)
	}
	for _, k := range []string{"p1", "p2"} {
		if diff := cmp.Diff(ints(0, 300), seen[k]); diff != "" {
			t.Errorf("partition %s, in order (-want +got):\n%s", k, diff)
		}
	}
}

// TestStreamsExactlyOnceInOrder: random adds over streams and partitions, random cuts and send
// latencies, with Waits in between: every item is sent once, each partition's items in order,
// and released once.
func TestStreamsExactlyOnceInOrder(t *testing.T) {
	for range 15 {
		var mu sync.Mutex
		got := map[string][]int{}
		var released atomic.Int64
		send := func(_ context.Context, b []item) {
			if rand.IntN(4) == 0 {
				time.Sleep(time.Duration(rand.IntN(50)) * time.Microsecond)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, it := range b {
				if it.key != b[0].key {
					t.Errorf("a batch mixes partitions %s and %s", b[0].key, it.key)
				}
				got[it.key] = append(got[it.key], it.n)
			}
		}
		cut := func(its []item) int { return 1 + rand.IntN(min(len(its), 200)) }
		ss := NewStreams(cut, send, func(n int) { released.Add(int64(n)) })
		next := map[string]int{}
		total := 0
		for range 200 {
			stream, p := []string{"a", "b"}[rand.IntN(2)], rand.IntN(3)
			k := fmt.Sprintf("%s%d", stream, p)
			n := 1 + rand.IntN(500)
			ss.Add(stream, uint8(p), items(k, next[k], next[k]+n))
			next[k] += n
			total += n
			if rand.IntN(50) == 0 {
				if err := ss.Wait(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := ss.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		for k, n := range next {
			if diff := cmp.Diff(ints(0, n), got[k]); diff != "" {
				t.Fatalf("%s: sent, in order (-want +got):\n%s", k, diff)
			}
		}
		if released.Load() != int64(total) {
			t.Fatalf("released %d of %d", released.Load(), total)
		}
	}
}
