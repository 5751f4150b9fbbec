package batch

import (
	"context"
	"sync"
)

// Streams deliver items on one goroutine per stream: each stream sends its items in order, one batch
// at a time, and a stream whose sink fails or hangs (one node of a cluster, retried with backoff)
// delays only its own items while the other streams go on. Add is called by one goroutine (the
// queue's flusher); Wait and Close may be called from any.
type Streams[T any] struct {
	cut     func(items []T) int                  // how many items from the head make the next batch (at least 1)
	send    func(ctx context.Context, batch []T) // delivers a batch or gives up on it; the batch is not kept
	release func(n int)                          // called once a batch of n items is finished

	ctx    context.Context // given to send; cancelled to abort
	cancel context.CancelFunc
	stop   chan struct{} // closed by Close: streams exit once empty
	wg     sync.WaitGroup

	mu      sync.Mutex
	streams map[string]*stream[T]
}

// stream is one goroutine's FIFO: items[head:] wait, the batch being sent among them.
type stream[T any] struct {
	mu       sync.Mutex
	items    []T
	head     int
	peak     int           // the longest items has been since the stream last emptied
	lows     int           // how many times in a row it emptied with a peak under a quarter of its capacity
	in, out  uint64        // items added and finished, ever: Wait's barrier
	wake     chan struct{} // buffered: items were added
	progress chan struct{} // closed, then replaced, when out grows while waited is set
	waited   bool          // a Wait is waiting on progress
}

// A stream whose buffer's capacity is over shrinkAbove drops it when it empties for the
// shrinkAfter-th time in a row with a peak under a quarter of it: a burst on one stream does not
// pin its peak for the life of the process, while a load that comes and goes keeps its buffer.
const (
	shrinkAbove = 1 << 12
	shrinkAfter = 64
)

// NewStreams returns streams that send batches cut from each stream's head, and report each
// finished batch's size to release.
func NewStreams[T any](cut func([]T) int, send func(context.Context, []T), release func(int)) *Streams[T] {
	ctx, cancel := context.WithCancel(context.Background())
	return &Streams[T]{cut: cut, send: send, release: release, ctx: ctx, cancel: cancel,
		stop: make(chan struct{}), streams: map[string]*stream[T]{}}
}

// Add copies items to the end of stream key, starting the stream if it is new.
func (ss *Streams[T]) Add(key string, items []T) {
	if len(items) == 0 {
		return
	}
	ss.mu.Lock()
	l := ss.streams[key]
	if l == nil {
		l = &stream[T]{wake: make(chan struct{}, 1), progress: make(chan struct{})}
		ss.streams[key] = l
		ss.wg.Add(1)
		go ss.run(l)
	}
	ss.mu.Unlock()
	l.mu.Lock()
	l.items = append(l.items, items...)
	l.peak = max(l.peak, len(l.items)-l.head)
	l.in += uint64(len(items))
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Wait returns when every item added before the call is finished, or ctx's error when it ends
// first.
func (ss *Streams[T]) Wait(ctx context.Context) error {
	type mark struct {
		l  *stream[T]
		in uint64
	}
	ss.mu.Lock()
	marks := make([]mark, 0, len(ss.streams))
	for _, l := range ss.streams {
		l.mu.Lock()
		marks = append(marks, mark{l, l.in})
		l.mu.Unlock()
	}
	ss.mu.Unlock()
	for _, m := range marks {
		for {
			m.l.mu.Lock()
			done, progress := m.l.out >= m.in, m.l.progress
			m.l.waited = !done
			m.l.mu.Unlock()
			if done {
				break
			}
			select {
			case <-progress:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// Abort cancels send's context: what is being sent and what is left is given up on promptly.
func (ss *Streams[T]) Abort() { ss.cancel() }

// Close lets every stream finish what it holds and stop. If ctx ends first, it aborts (see Abort)
// and returns ctx's error once every stream has stopped. Add must not be called after Close.
func (ss *Streams[T]) Close(ctx context.Context) error {
	close(ss.stop)
	done := make(chan struct{})
	go func() { ss.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		ss.cancel()
		<-done
	}
	ss.cancel()
	return err
}

func (ss *Streams[T]) run(l *stream[T]) {
	defer ss.wg.Done()
	for {
		l.mu.Lock()
		for l.head == len(l.items) {
			l.mu.Unlock()
			select {
			case <-l.wake:
			case <-ss.stop:
				l.mu.Lock()
				empty := l.head == len(l.items)
				l.mu.Unlock()
				if empty {
					return
				}
			}
			l.mu.Lock()
		}
		n := ss.cut(l.items[l.head:])
		batch := l.items[l.head : l.head+n : l.head+n] // Add may append past it, never into it
		l.mu.Unlock()

		ss.send(ss.ctx, batch)

		l.mu.Lock()
		clear(batch) // drop references so that the items can be collected
		l.head += n
		l.out += uint64(n)
		switch {
		case l.head == len(l.items):
			if cap(l.items) > shrinkAbove && l.peak < cap(l.items)/4 {
				l.lows++
			} else {
				l.lows = 0
			}
			l.items, l.head, l.peak = l.items[:0], 0, 0
			if l.lows >= shrinkAfter {
				l.items, l.lows = nil, 0
			}
		case l.head > len(l.items)/2: // compact, so that a stream never empty cannot grow forever
			k := copy(l.items, l.items[l.head:])
			clear(l.items[k:])
			l.items, l.head = l.items[:k], 0
		}
		if l.waited { // a channel per batch only when someone waits
			close(l.progress)
			l.progress, l.waited = make(chan struct{}), false
		}
		l.mu.Unlock()
		ss.release(n)
	}
}
