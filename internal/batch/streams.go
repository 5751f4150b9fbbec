package batch

import (
	"context"
	"slices"
	"sync"
)

// Streams deliver items on one goroutine per stream, so that a stream whose sink fails or hangs
// (one node of a cluster, retried with backoff) delays only its own items while the others go
// on. Within a stream, items are kept by partition: a batch takes up to a batch's worth of one
// partition's items, whichever flush added them, so a stream that fell behind (a slow or
// recovering sink) catches up in full batches; the partitions take turns, and each partition's
// items go out in the order they were added. Add is called by one goroutine (the queue's
// flusher); Wait and Close may be called from any.
type Streams[T any] struct {
	cut     func(items []T) int                  // how many of a partition's first items make the next batch (at least 1)
	send    func(ctx context.Context, batch []T) // delivers a batch or gives up on it; the batch is not kept
	release func(n int)                          // called once a batch of n items is finished

	ctx    context.Context // given to send; cancelled to abort
	cancel context.CancelFunc
	stop   chan struct{} // closed by Close: streams exit once empty
	wg     sync.WaitGroup

	mu      sync.Mutex
	streams map[string]*stream[T]
}

// Partitions are numbered 0 to Partitions-1.
const Partitions = 256

// stream is one goroutine's work: the partitions with items waiting, in turn.
type stream[T any] struct {
	mu       sync.Mutex
	parts    [Partitions]*part[T]
	turn     []uint8       // partitions with items waiting and not being sent, in turn order
	wake     chan struct{} // buffered: items were added
	progress chan struct{} // closed, then replaced, when a batch finishes while waited is set
	waited   bool          // a Wait is waiting on progress; only run clears it
}

// part is one partition's items in a stream: items[head:] wait, the batch being sent among them.
type part[T any] struct {
	items   []T
	head    int
	in, out uint64 // items added and finished, ever: Wait's barrier
	queued  bool   // in turn, or being sent
	peak    int    // the most items waiting since it last emptied
	lows    int    // how many times in a row it emptied with a peak under a quarter of its capacity
}

// A partition whose buffer's capacity is over shrinkAbove drops it when it empties for the
// shrinkAfter-th time in a row with a peak under a quarter of it: a burst does not pin its peak
// for the life of the process, while a load that comes and goes keeps its buffer.
const (
	shrinkAbove = 1 << 12
	shrinkAfter = 64
)

// NewStreams returns streams that send batches cut from each partition's items, and report each
// finished batch's size to release.
func NewStreams[T any](cut func([]T) int, send func(context.Context, []T), release func(int)) *Streams[T] {
	ctx, cancel := context.WithCancel(context.Background())
	return &Streams[T]{cut: cut, send: send, release: release, ctx: ctx, cancel: cancel,
		stop: make(chan struct{}), streams: map[string]*stream[T]{}}
}

// Add copies items, all of partition p, to stream key, starting the stream if it is new.
func (ss *Streams[T]) Add(key string, p uint8, items []T) {
	ss.AddAll([][]T{items}, func(*T) uint8 { return p }, func(uint8) string { return key })
}

// AddAll copies every item of chunks, in order, to its partition (part) in the stream that
// route names for that partition, starting streams as needed. route is asked once per
// partition a call. It makes one pass and one copy, and takes each stream's lock once.
func (ss *Streams[T]) AddAll(chunks [][]T, part func(*T) uint8, route func(p uint8) string) {
	var dest [Partitions]*stream[T]
	var held []*stream[T]
	for _, c := range chunks {
		for i := range c {
			p := part(&c[i])
			s := dest[p]
			if s == nil {
				s = ss.stream(route(p))
				if !slices.Contains(held, s) {
					s.mu.Lock()
					held = append(held, s)
				}
				dest[p] = s
			}
			s.add(p, c[i])
		}
	}
	for _, s := range held {
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// stream returns stream key, starting it if it is new.
func (ss *Streams[T]) stream(key string) *stream[T] {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.streams[key]
	if s == nil {
		s = &stream[T]{wake: make(chan struct{}, 1), progress: make(chan struct{})}
		ss.streams[key] = s
		ss.wg.Add(1)
		go ss.run(s)
	}
	return s
}

// add appends one item to partition p, putting p in turn if it was not. s.mu must be held.
func (s *stream[T]) add(p uint8, item T) {
	pt := s.parts[p]
	if pt == nil {
		pt = &part[T]{}
		s.parts[p] = pt
	}
	pt.items = append(pt.items, item)
	pt.peak = max(pt.peak, len(pt.items)-pt.head)
	pt.in++
	if !pt.queued {
		pt.queued = true
		s.turn = append(s.turn, p)
	}
}

// Wait returns when every item added before the call is finished, or ctx's error when it ends
// first.
func (ss *Streams[T]) Wait(ctx context.Context) error {
	type mark struct {
		s  *stream[T]
		pt *part[T]
		in uint64
	}
	var marks []mark
	ss.mu.Lock()
	for _, s := range ss.streams {
		s.mu.Lock()
		for _, pt := range s.parts {
			if pt != nil && pt.out < pt.in {
				marks = append(marks, mark{s, pt, pt.in})
			}
		}
		s.mu.Unlock()
	}
	ss.mu.Unlock()
	for _, m := range marks {
		for {
			m.s.mu.Lock()
			done, progress := m.pt.out >= m.in, m.s.progress
			if !done {
				m.s.waited = true // only run clears it, so that no waiter turns it off for another
			}
			m.s.mu.Unlock()
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

func (ss *Streams[T]) run(s *stream[T]) {
	defer ss.wg.Done()
	for {
		s.mu.Lock()
		for len(s.turn) == 0 {
			s.mu.Unlock()
			select {
			case <-s.wake:
			case <-ss.stop:
				s.mu.Lock()
				empty := len(s.turn) == 0
				s.mu.Unlock()
				if empty {
					return
				}
			}
			s.mu.Lock()
		}
		p := s.turn[0]
		s.turn = s.turn[1:]
		pt := s.parts[p]
		n := ss.cut(pt.items[pt.head:])
		batch := pt.items[pt.head : pt.head+n : pt.head+n] // Add may append past it, never into it
		s.mu.Unlock()

		ss.send(ss.ctx, batch)

		s.mu.Lock()
		clear(batch) // drop references so that the items can be collected
		pt.head += n
		pt.out += uint64(n)
		pt.settle()
		if pt.head < len(pt.items) {
			s.turn = append(s.turn, p) // the other partitions' turn first
		} else {
			pt.queued = false
		}
		if s.waited { // a channel per batch only when someone waits
			close(s.progress)
			s.progress, s.waited = make(chan struct{}), false
		}
		s.mu.Unlock()
		ss.release(n)
	}
}

// settle resets an emptied buffer (dropping it after a run of small peaks), and compacts one
// that is never empty so that it cannot grow forever. The stream's lock must be held.
func (pt *part[T]) settle() {
	switch {
	case pt.head == len(pt.items):
		if cap(pt.items) > shrinkAbove && pt.peak < cap(pt.items)/4 {
			pt.lows++
		} else {
			pt.lows = 0
		}
		clear(pt.items) // Add may have reallocated during the send: its copies are here
		pt.items, pt.head, pt.peak = pt.items[:0], 0, 0
		if pt.lows >= shrinkAfter {
			pt.items, pt.lows = nil, 0
		}
	case pt.head > len(pt.items)/2:
		k := copy(pt.items, pt.items[pt.head:])
		clear(pt.items[k:])
		pt.items, pt.head = pt.items[:k], 0
	}
}
