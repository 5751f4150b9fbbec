// Package batch is the recorder's queue and its delivery streams. The queue is a bounded buffer
// that one goroutine flushes when it holds a batch's worth, on an interval, on demand, and on
// close. It follows zap's BufferedWriteSyncer (size or interval, a goroutine stopped through
// channels, waits outside the lock, an idempotent close with a final flush), with two changes:
// Flush and Close take a context, and the bound counts items being delivered, so memory stays
// bounded while the sink is down. [Streams] deliver what the queue hands over on one goroutine
// per stream, so that a failing sink (one node of a cluster) delays only its own stream.
package batch

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Errors Put and Flush return.
var (
	ErrFull   = errors.New("queue full")
	ErrClosed = errors.New("queue closed")
)

// Deliver takes a snapshot of queued items, in chunks of at most the batch size in queue order,
// and must account for every one of them (delivered, or given up on) before it returns, except
// the held ones it returns: those stay counted in the queue's bound until [Queue.Release]. The
// chunks are reused afterwards: Deliver must not keep them (it copies what it holds). It runs on
// the flusher goroutine only, so it is never called concurrently. ctx is cancelled when Close's
// context ends before the queue is drained: Deliver must then give up promptly.
type Deliver[T any] func(ctx context.Context, chunks [][]T) (held int)

// Queue is a bounded FIFO buffer with a flusher goroutine. It is safe for concurrent use.
type Queue[T any] struct {
	capacity int
	size     int
	interval time.Duration
	deliver  Deliver[T]

	// Items are queued in chunks of size, so Put never grows or copies a slice: full chunks wait
	// in ready, delivered chunks return to free.
	mu       sync.Mutex
	cur      []T           // the chunk being filled
	ready    [][]T         // full chunks, oldest first
	free     [][]T         // emptied chunks for reuse
	queued   int           // items in cur and ready
	inflight int           // items handed to deliver and not yet finished
	space    chan struct{} // closed, then replaced, whenever room appears
	closed   bool

	kick     chan struct{}      // a batch's worth is queued
	flushReq chan chan struct{} // Flush asks; the flusher closes the reply when done
	stop     chan struct{}      // Close asks the flusher to drain and exit
	done     chan struct{}      // closed when the flusher has exited
	ctx      context.Context    // given to deliver; cancelled to abort on Close's deadline
	cancel   context.CancelFunc

	closeOnce sync.Once
	closeErr  error
}

// New starts a queue of at most capacity items (queued plus being delivered) that flushes when
// size items are queued or every interval.
func New[T any](capacity, size int, interval time.Duration, deliver Deliver[T]) *Queue[T] {
	ctx, cancel := context.WithCancel(context.Background())
	q := &Queue[T]{
		capacity: capacity, size: size, interval: interval, deliver: deliver,
		space: make(chan struct{}),
		kick:  make(chan struct{}, 1), flushReq: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
		ctx: ctx, cancel: cancel,
	}
	go q.run()
	return q
}

// Put queues item. When the queue is full it waits for room until ctx ends if block is true,
// and returns ErrFull at once otherwise. After Close it returns ErrClosed.
func (q *Queue[T]) Put(ctx context.Context, item T, block bool) error {
	q.mu.Lock()
	for {
		if q.closed {
			q.mu.Unlock()
			return ErrClosed
		}
		if q.queued+q.inflight < q.capacity {
			break
		}
		if !block {
			q.mu.Unlock()
			return ErrFull
		}
		space := q.space
		q.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		case <-q.done:
			return ErrClosed
		}
		q.mu.Lock()
	}
	if q.cur == nil {
		if n := len(q.free); n > 0 {
			q.cur, q.free = q.free[n-1], q.free[:n-1]
		} else {
			q.cur = make([]T, 0, q.size)
		}
	}
	q.cur = append(q.cur, item)
	q.queued++
	full := len(q.cur) == q.size
	if full {
		q.ready = append(q.ready, q.cur)
		q.cur = nil
	}
	q.mu.Unlock()
	if full {
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Release returns n items that Deliver held to the queue's bound, once they are delivered or
// given up on.
func (q *Queue[T]) Release(n int) {
	q.mu.Lock()
	q.inflight -= n
	q.signalSpace()
	q.mu.Unlock()
}

// signalSpace wakes every Put waiting for room. q.mu must be held.
func (q *Queue[T]) signalSpace() {
	close(q.space)
	q.space = make(chan struct{})
}

// Depth returns the number of items queued or being delivered.
func (q *Queue[T]) Depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued + q.inflight
}

// Flush delivers everything queued before the call (hands it to Deliver, which may hold some),
// and returns when that is done or ctx ends.
func (q *Queue[T]) Flush(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case q.flushReq <- reply:
	case <-q.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-reply:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops intake, delivers everything queued, and returns when done. If ctx ends first,
// delivery is aborted (deliver's context is cancelled and the rest is handed to deliver to be
// given up on) and Close returns ctx's error once the flusher has exited. A ctx that has ended
// already cancels deliver's context before the final flush starts, so that flush sends nothing.
// Close is idempotent: later calls wait for the first and return its result.
func (q *Queue[T]) Close(ctx context.Context) error {
	q.closeOnce.Do(func() {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		ended := ctx.Err() != nil
		if ended {
			q.cancel()
		}
		close(q.stop)
		select {
		case <-q.done:
		case <-ctx.Done():
			q.cancel()
			<-q.done
			ended = true
		}
		if ended {
			q.closeErr = ctx.Err()
		}
		q.cancel()
	})
	return q.closeErr
}

func (q *Queue[T]) run() {
	defer close(q.done)
	tick := time.NewTicker(q.interval)
	defer tick.Stop()
	for {
		select {
		case <-q.kick:
			q.flush()
		case <-tick.C:
			q.flush()
		case reply := <-q.flushReq:
			q.flush()
			close(reply)
		case <-q.stop:
			for q.flush() {
			}
			return
		}
	}
}

// flush hands everything queued to deliver, and reports whether there was anything.
func (q *Queue[T]) flush() bool {
	q.mu.Lock()
	if q.queued == 0 {
		q.mu.Unlock()
		return false
	}
	chunks := q.ready
	if len(q.cur) > 0 {
		chunks = append(chunks, q.cur)
		q.cur = nil
	}
	n := q.queued
	q.ready, q.queued = nil, 0
	q.inflight += n
	q.mu.Unlock()

	held := q.deliver(q.ctx, chunks)

	for _, c := range chunks {
		clear(c) // drop references to delivered items so they can be collected
	}
	q.mu.Lock()
	q.inflight -= n - held
	for _, c := range chunks {
		if len(q.free)*q.size < q.capacity {
			q.free = append(q.free, c[:0])
		}
	}
	q.signalSpace()
	q.mu.Unlock()
	return true
}
