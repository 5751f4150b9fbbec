package meterbill

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/felixge/httpsnoop"

	"github.com/meterbill/meterbill/internal/backoff"
	"github.com/meterbill/meterbill/internal/batch"
)

// Recorder errors.
var (
	// ErrQueueFull reports an event refused because the queue is full, under
	// [WithRejectWhenFull].
	ErrQueueFull = errors.New("meterbill: recorder queue full")
	// ErrClosed reports an event recorded after [Recorder.Close].
	ErrClosed = errors.New("meterbill: recorder closed")
	// ErrUndelivered reports accepted events the recorder gave up on that the meter does not
	// hold: refused by the meter for good, or never sent because Close's context ended first.
	// The events go to the [WithDeliveryErrorHandler] handler.
	ErrUndelivered = errors.New("meterbill: events undelivered")
	// ErrUnconfirmed reports accepted events the recorder gave up on after sending them at least
	// once without a success, so that the meter may hold them: a request cut off by Close's
	// deadline, or an earlier attempt whose reply was lost. The events go to the
	// [WithDeliveryErrorHandler] handler with this error, not [ErrUndelivered]: replaying them
	// can double them, unless the replay reaches a meter that still deduplicates them (same
	// Time, same node, soon).
	ErrUnconfirmed = errors.New("meterbill: events unconfirmed")
)

// Recorder sends usage events to a [Meter] in the background: Record only validates, stamps and
// queues, so no caller waits on the meter. A goroutine hands the queue over when a batch's worth
// is queued or every interval, to one delivery stream per node of a [UnimeterMeter] (one stream
// for the embedded meter and for meters of your own). Each stream keeps its events by partition
// and sends batches of one partition, the partitions taking turns (so a stream that fell behind
// catches up in full batches), retrying transient failures with the same events (same
// timestamps, so the meter deduplicates any that arrived twice) until they are delivered,
// refused for good, or Close's context ends; once it has ended, the meter is not called again.
// A node that fails or hangs delays only its own stream, while the others deliver on schedule;
// what waits for it still counts in the queue's bound ([WithQueueSize]). Every event Record accepted is delivered,
// or handed to the [WithDeliveryErrorHandler] handler; none is dropped silently.
//
// A Recorder is safe for concurrent use. Call Close to stop it; it owns goroutines.
type Recorder struct {
	meter   Meter
	metrics map[string]Metric
	q       *batch.Queue[Event]
	o       *options
	block   bool
	lane    int64
	lastUS  atomic.Int64 // last microsecond stamped
	backoff backoff.Policy
	streams *batch.Streams[Event]
	route   func(partition uint8) string // the stream of a partition's events

	enqueued, delivered, duplicates, retried, rejected, failed, unconfirmed atomic.Uint64
	inflight                                                                atomic.Int64 // requests in the middleware

	closeOnce sync.Once
	closeErr  error
}

// RecorderStats counts what a [Recorder] did since it started.
type RecorderStats struct {
	Enqueued    uint64 // events Record accepted
	Delivered   uint64 // events the meter has, duplicates included
	Duplicates  uint64 // of those, events the meter already had (retries that arrived twice)
	Retried     uint64 // batch attempts that failed transiently and were retried
	Rejected    uint64 // events Record refused: invalid, unknown metric, queue full or closed
	Failed      uint64 // accepted events given up on (see ErrUndelivered and ErrUnconfirmed)
	Unconfirmed uint64 // of those, events sent at least once without a success: the meter may hold them
	QueueDepth  int    // events queued or being delivered now
}

// NewRecorder defines metrics on meter (idempotently) and starts a recorder for them; events for
// other metrics are refused. Options: [WithQueueSize], [WithBatchSize], [WithFlushInterval],
// [WithRejectWhenFull], [WithLane], [WithDeliveryErrorHandler], [WithObserver], [WithLogger].
func NewRecorder(ctx context.Context, meter Meter, metrics []Metric, opts ...RecorderOption) (*Recorder, error) {
	if meter == nil || len(metrics) == 0 {
		return nil, errors.New("meterbill: NewRecorder needs a meter and the metrics it records")
	}
	o, err := newOptions(opts, RecorderOption.applyRecorder)
	if err != nil {
		return nil, err
	}
	observed := observedMeter{Meter: meter, obs: o.observer}
	if err := observed.Define(ctx, metrics...); err != nil {
		return nil, err
	}
	r := &Recorder{meter: observed, metrics: make(map[string]Metric, len(metrics)), o: o, block: !o.rejectWhenFull,
		backoff: backoff.Policy{Base: o.retryBase, Max: o.retryMaxRecorder}}
	for _, m := range metrics {
		r.metrics[m.Code] = m
	}
	if o.lane >= 0 {
		r.lane = int64(o.lane)
	} else {
		var b [8]byte
		_, _ = rand.Read(b[:])
		r.lane = int64(binary.LittleEndian.Uint64(b[:]) % laneCount)
	}
	r.route = oneRoute
	if rt, ok := meter.(router); ok {
		r.route = rt.route
	}
	r.q = batch.New(o.queueSize, o.batchSize, o.flushInterval, r.deliver)
	r.streams = batch.NewStreams(r.cut, func(ctx context.Context, events []Event) { r.send(ctx, events, false) }, r.q.Release)
	return r, nil
}

// laneCount is how many processes can stamp the same microsecond without colliding: the
// nanosecond digits below the microsecond.
const laneCount = 1000

// Record validates e and queues it. It makes no network call. An event without a Time is stamped
// now (see [Recorder] and docs/recording.md's timestamp scheme); an event with a Time keeps it, so a
// caller that re-sends a source record must give it the same Time each time ([TimeFromID]).
// Invalid events and unknown metrics are refused with an error wrapping [ErrInvalidEvent] or
// [ErrUnknownMetric]; nothing is truncated. A full queue waits for room until ctx ends, or
// returns [ErrQueueFull] under [WithRejectWhenFull]. After Close, Record returns [ErrClosed].
//
// The recorder keeps e until it is delivered; Record copies its Properties.
func (r *Recorder) Record(ctx context.Context, e Event) error {
	return r.record(ctx, e, r.block, true, false)
}

// recordWithin records like Record, but waits at most wait for room in a full queue, whatever
// the recorder's policy: the middleware's bound on a request. A request that finds no room is
// handed to the delivery-error handler, so its usage is never dropped silently.
func (r *Recorder) recordWithin(e Event, wait time.Duration, known bool) error {
	err := r.record(context.Background(), e, false, wait == 0, known) // no room at once is not yet a rejection
	if errors.Is(err, ErrQueueFull) && wait > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		err = r.record(ctx, e, true, true, known)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: no room within %s", ErrQueueFull, wait)
		}
	}
	if err != nil && (errors.Is(err, ErrQueueFull) || errors.Is(err, ErrClosed)) && r.o.deliveryErr != nil {
		r.o.deliveryErr(err, []Event{e})
	}
	return err
}

// record validates, stamps and queues e, waiting for room if block; a full queue counts as a
// rejection only if countFull. known says e.Metric is one of the recorder's (the middleware's
// own metric, checked when it was built), which spares a lookup.
func (r *Recorder) record(ctx context.Context, e Event, block, countFull, known bool) error {
	if e.Time.IsZero() {
		e.Time = r.stamp()
	}
	if !known {
		if _, ok := r.metrics[e.Metric]; !ok {
			r.reject()
			if err := e.Validate(); err != nil {
				return err
			}
			return fmt.Errorf("%w %q: the recorder was not started with it", ErrUnknownMetric, e.Metric)
		}
	}
	if err := e.validateFields(); err != nil { // the code was validated when the recorder started
		r.reject()
		return err
	}
	if len(e.Properties) > 0 {
		e.Properties = slices.Clone(e.Properties)
	}
	if err := r.q.Put(ctx, e, block); err != nil {
		if countFull || !errors.Is(err, batch.ErrFull) {
			r.reject()
		}
		switch {
		case errors.Is(err, batch.ErrFull):
			return ErrQueueFull
		case errors.Is(err, batch.ErrClosed):
			return ErrClosed
		}
		return err
	}
	r.enqueued.Add(1)
	return nil
}

// reject counts an event Record refused.
func (r *Recorder) reject() {
	r.rejected.Add(1)
	r.o.observer.Observe(Measurement{Kind: EventsRejected, N: 1})
}

// stamp returns a timestamp unique within the process and, given distinct lanes, across
// processes: a microsecond strictly after the last one stamped (the wall clock's, unless events
// come faster than one a microsecond), with the lane as its nanoseconds.
func (r *Recorder) stamp() time.Time {
	now := r.o.now().UnixMicro()
	for {
		last := r.lastUS.Load()
		us := max(now, last+1)
		if r.lastUS.CompareAndSwap(last, us) {
			return time.Unix(0, us*1000+r.lane).UTC()
		}
	}
}

// TimeFromID returns t with its sub-millisecond digits derived from a source record's id, so
// that re-sending the same record (same t, same id) yields the same timestamp, which the meter
// deduplicates, while different records within the same millisecond almost always differ (one
// in a million collides). Use it for events whose source has its own id, such as a request id or
// a row's primary key.
func TimeFromID(t time.Time, id string) time.Time {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return t.Truncate(time.Millisecond).Add(time.Duration(h.Sum64() % uint64(time.Millisecond)))
}

// Flush delivers everything recorded before the call, and returns when that is done or ctx ends.
func (r *Recorder) Flush(ctx context.Context) error {
	if err := r.q.Flush(ctx); err != nil {
		if errors.Is(err, batch.ErrClosed) {
			return ErrClosed
		}
		return err
	}
	return r.streams.Wait(ctx)
}

// Close stops intake, delivers everything queued, and returns. If ctx ends first (or has already
// ended), it calls the meter no more, gives up on what is left and hands it to the
// [WithDeliveryErrorHandler] handler: events never sent wrapped in [ErrUndelivered], events sent
// without a success (the meter may hold them) in [ErrUnconfirmed]. Close is the final account: it
// returns nil only if every event Record accepted was delivered, and otherwise an error wrapping
// [ErrUndelivered], [ErrUnconfirmed] or both, that says how many of each (those refused by the
// meter earlier included), and ctx's error if it ended first. Close is idempotent: later calls
// return the first call's result.
func (r *Recorder) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		// Once ctx ends, the meter is called no more: not for the final flush, not for a retry.
		// AfterFunc runs Abort on its own goroutine; an ended ctx aborts here, before anything.
		if ctx.Err() != nil {
			r.streams.Abort()
		}
		stop := context.AfterFunc(ctx, r.streams.Abort)
		defer stop()
		// Requests still in the middleware (a hijacked connection, which http.Server.Shutdown
		// does not wait for) record their usage when they return: wait for them first.
		for r.inflight.Load() > 0 && ctx.Err() == nil {
			t := time.NewTimer(2 * time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
		err := r.q.Close(ctx)
		if lerr := r.streams.Close(ctx); err == nil {
			err = lerr
		}
		total, failed, unconfirmed := r.enqueued.Load(), r.failed.Load(), r.unconfirmed.Load()
		var ce closeError
		if n := failed - unconfirmed; n > 0 {
			ce.add(fmt.Sprintf("%d of %d events", n, total), ErrUndelivered)
		}
		if unconfirmed > 0 {
			ce.add(fmt.Sprintf("%d of %d events, which the meter may hold", unconfirmed, total), ErrUnconfirmed)
		}
		if len(ce.errs) == 0 { // everything delivered, even if ctx ended on an empty queue
			return
		}
		if err != nil {
			ce.msg += ": " + err.Error()
			ce.errs = append(ce.errs, err)
		}
		r.closeErr = &ce
	})
	return r.closeErr
}

// closeError is Close's account: one line, wrapping each sentinel it names and ctx's error.
type closeError struct {
	msg  string
	errs []error
}

func (e *closeError) add(what string, sentinel error) {
	if e.msg != "" {
		e.msg += "; "
	}
	e.msg += sentinel.Error() + ": " + what
	e.errs = append(e.errs, sentinel)
}

func (e *closeError) Error() string   { return e.msg }
func (e *closeError) Unwrap() []error { return e.errs }

// Stats returns the recorder's counters.
func (r *Recorder) Stats() RecorderStats {
	return RecorderStats{
		Enqueued: r.enqueued.Load(), Delivered: r.delivered.Load(), Duplicates: r.duplicates.Load(),
		Retried: r.retried.Load(), Rejected: r.rejected.Load(), Failed: r.failed.Load(), Unconfirmed: r.unconfirmed.Load(),
		QueueDepth: r.q.Depth(),
	}
}

// deliver hands a snapshot of the queue to the streams: each event to its partition (account %
// 256) in the stream of the node that partition is routed to, in one pass. The streams hold the
// events, still counted in the queue's bound, until they are delivered or given up on.
func (r *Recorder) deliver(_ context.Context, snapshot [][]Event) int {
	n := 0
	for _, chunk := range snapshot {
		n += len(chunk)
	}
	count(r.o.observer, EventsRecorded, n) // every accepted event passes here exactly once
	r.o.observer.Observe(Measurement{Kind: QueueDepth, N: r.q.Depth()})
	r.streams.AddAll(snapshot, partitionOf, r.route)
	return n
}

func partitionOf(e *Event) uint8 { return uint8(e.Account % 256) }

// cut returns how many of a partition's first waiting events make its next batch: at most the
// batch size and the meter's per-request property limit (the stream keeps partitions apart).
func (r *Recorder) cut(events []Event) int {
	end, props := 0, 0
	for end < len(events) && end < r.o.batchSize {
		if end > 0 && props+len(events[end].Properties) > MaxBatchProperties {
			break
		}
		props += len(events[end].Properties)
		end++
	}
	return end
}

// router is implemented by meters that send each partition's events (account % 256) to one node
// of several (the Unimeter meter, to the partition's leader): the recorder delivers each
// node's events on a stream of its own, so that a node that fails delays only the accounts it
// leads. A meter that does not say gets one stream: its topology is unknown, and a stream per
// partition would put up to 256 requests in flight at once on a service that may not expect
// them.
type router interface {
	route(partition uint8) string
}

func oneRoute(uint8) string { return "" }

// send delivers one batch, retrying transient failures until ctx ends. A batch the meter refuses
// for good is split to find the events at fault, so one bad event cannot take its neighbours
// down with it. Once ctx has ended the meter is not called again. A batch given up on is
// undelivered if no attempt to send it was made (sent is false, and none here), and unconfirmed
// otherwise, since an attempt that failed may still have been applied.
func (r *Recorder) send(ctx context.Context, events []Event, sent bool) {
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil { // Close's context ended: what is left stays here
			r.abandon(sent || attempt > 1, err, events)
			return
		}
		res, err := r.meter.Ingest(ctx, events)
		switch {
		case err == nil:
			r.delivered.Add(uint64(len(events)))
			r.duplicates.Add(uint64(res.Duplicates))
			count(r.o.observer, EventsDelivered, len(events))
			count(r.o.observer, EventsDuplicate, res.Duplicates)
			return
		case ctx.Err() != nil: // Close's context ended during the call, which may have landed
			r.abandon(true, err, events)
			return
		case permanent(err) && len(events) > 1:
			// A refusal means nothing here was applied, but an earlier attempt without an
			// answer may have been: the halves inherit sent.
			half := len(events) / 2
			r.send(ctx, events[:half], sent || attempt > 1)
			r.send(ctx, events[half:], sent || attempt > 1)
			return
		case permanent(err) && (sent || attempt > 1):
			r.unconfirm(err, events)
			return
		case permanent(err):
			r.giveUp(err, events)
			return
		}
		r.retried.Add(1)
		r.o.logger.Warn("meterbill: meter ingest failed; retrying", "events", len(events), "attempt", attempt, "err", err)
		if werr := backoff.Sleep(ctx, r.backoff.Wait(attempt)); werr != nil {
			r.abandon(true, err, events)
			return
		}
	}
}

// abandon gives up on a batch at Close's deadline: undelivered if no attempt to send it was
// made, unconfirmed if one was.
func (r *Recorder) abandon(sent bool, err error, events []Event) {
	if !sent {
		r.giveUp(fmt.Errorf("%w: not sent: Close's context ended first: %w", ErrUndelivered, err), events)
		return
	}
	r.unconfirm(fmt.Errorf("sent without a success before Close's context ended: %w", err), events)
}

// unconfirm gives up on a batch the meter may hold.
func (r *Recorder) unconfirm(err error, events []Event) {
	r.unconfirmed.Add(uint64(len(events)))
	count(r.o.observer, EventsUnconfirmed, len(events))
	r.giveUp(fmt.Errorf("%w: %w", ErrUnconfirmed, err), events)
}

// permanent reports whether the meter refused events for reasons a retry cannot change: one of
// meterbill's refusals, or an error that says of itself it is not retryable (a [MeterError] from
// a closed meter, say). Any other error is retried.
func permanent(err error) bool {
	if errors.Is(err, ErrInvalidEvent) || errors.Is(err, ErrUnknownMetric) || errors.Is(err, ErrMetricConflict) {
		return true
	}
	var r interface{ Retryable() bool }
	return errors.As(err, &r) && !r.Retryable()
}

func (r *Recorder) giveUp(err error, events []Event) {
	r.failed.Add(uint64(len(events)))
	count(r.o.observer, EventsFailed, len(events))
	if !errors.Is(err, ErrUndelivered) && !errors.Is(err, ErrUnconfirmed) {
		err = fmt.Errorf("%w: %w", ErrUndelivered, err)
	}
	if r.o.deliveryErr != nil {
		r.o.deliveryErr(err, slices.Clone(events))
		return
	}
	r.o.logger.Error("meterbill: usage events undelivered", "events", len(events), "err", err)
}

// ---------------------------------------------------------------------------------------------
// Middleware

// usage is one request's recording, which the handler adjusts through the context helpers. It
// is also the request's context (its parent's, plus itself under usageKey), so a request costs
// one allocation for both.
type usage struct {
	context.Context
	next   httpsnoop.WriteHeaderFunc
	status atomic.Int32 // the first final (non-1xx) status written; 0 until then, which counts as 200
	mu     sync.Mutex   // guards what the helpers set, which they may do from other goroutines
	metric string
	value  Value
	props  []Property
	skip   bool
}

type usageKey struct{}

// Value implements context.Context.
func (u *usage) Value(key any) any {
	if key == (usageKey{}) {
		return u
	}
	return u.Context.Value(key)
}

func usageFrom(ctx context.Context) *usage {
	u, _ := ctx.Value(usageKey{}).(*usage)
	return u
}

// SetUsageValue sets the value the middleware records for this request, instead of its default.
// It reports false if ctx is not a request inside the middleware.
func SetUsageValue(ctx context.Context, v Value) bool {
	return withUsage(ctx, func(u *usage) { u.value = v })
}

// SetUsageMetric sets the metric the middleware records this request under, instead of its
// default; the recorder must have been started with it. It reports false if ctx is not a request
// inside the middleware.
func SetUsageMetric(ctx context.Context, code string) bool {
	return withUsage(ctx, func(u *usage) { u.metric = code })
}

// AddUsageProperty adds a property to this request's event. It reports false if ctx is not a
// request inside the middleware.
func AddUsageProperty(ctx context.Context, key, value string) bool {
	return withUsage(ctx, func(u *usage) { u.props = append(u.props, Property{Key: key, Value: value}) })
}

// SkipUsage tells the middleware not to record this request. It reports false if ctx is not a
// request inside the middleware.
func SkipUsage(ctx context.Context) bool {
	return withUsage(ctx, func(u *usage) { u.skip = true })
}

func withUsage(ctx context.Context, f func(*usage)) bool {
	u := usageFrom(ctx)
	if u == nil {
		return false
	}
	u.mu.Lock()
	f(u)
	u.mu.Unlock()
	return true
}

// AccountFromHeader reads the meter account from a request header, such as one set by an API
// gateway after it authenticated the caller. It is safe only behind such a gateway, which must
// strip the header from client requests: otherwise any client can bill another account.
func AccountFromHeader(name string) func(*http.Request) (uint64, bool) {
	return func(r *http.Request) (uint64, bool) {
		acct, err := strconv.ParseUint(r.Header.Get(name), 10, 64)
		return acct, err == nil && acct > 0
	}
}

// NewMiddleware returns middleware that records one event of metric for every request it lets
// through, after the handler returns. account maps a request to its meter account (from your
// authentication: there is no default, because a spoofable one would let clients bill each
// other); a request without an account is served and not recorded. By default a request counts
// when its status is below 400 and records the value 1; [WithCountIf] and [WithDefaultValue]
// change that, and the handler can adjust its own request with [SetUsageValue],
// [SetUsageMetric], [AddUsageProperty] and [SkipUsage].
//
// The recording is detached from the client's cancellation, and never holds the response
// longer than [WithQueueWait] for room in a full queue: past it, the request's usage is refused,
// counted and handed to the recorder's delivery-error handler. The ResponseWriter is wrapped
// with httpsnoop, so Flusher, Hijacker, ReaderFrom and Unwrap keep working. Options:
// [WithCountIf], [WithDefaultValue], [WithQueueWait], [WithLogger].
//
// It returns the middleware itself, for use inline (r.Use(meterbill.NewMiddleware(…))), and
// panics on what is a programming error found at start-up, as http.ServeMux.Handle does on an
// invalid pattern: a nil recorder or account function, a metric the recorder was not started
// with (the panic's value is an error wrapping [ErrUnknownMetric]), or an invalid option.
func NewMiddleware(rec *Recorder, metric string, account func(*http.Request) (uint64, bool), opts ...MiddlewareOption) func(http.Handler) http.Handler {
	if rec == nil || account == nil {
		panic(errors.New("meterbill: NewMiddleware needs a recorder and an account function"))
	}
	if _, ok := rec.metrics[metric]; !ok {
		panic(fmt.Errorf("%w %q: the recorder was not started with it", ErrUnknownMetric, metric))
	}
	o, err := newOptions(opts, MiddlewareOption.applyMiddleware)
	if err != nil {
		panic(err)
	}
	countIf, value, wait := o.countIf, o.defaultValue, o.queueWait
	if countIf == nil {
		countIf = func(status int) bool { return status < 400 }
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			acct, ok := account(r)
			if !ok {
				next.ServeHTTP(w, r)
				return
			}
			rec.inflight.Add(1) // Close waits for it, hijacked or not
			defer rec.inflight.Add(-1)
			u := &usage{Context: r.Context(), metric: metric, value: value}
			next.ServeHTTP(httpsnoop.Wrap(w, httpsnoop.Hooks{WriteHeader: u.hook}), r.WithContext(u))
			status := int(u.status.Load())
			if status == 0 {
				status = http.StatusOK
			}
			u.mu.Lock()
			e := Event{Account: acct, Metric: u.metric, Value: u.value, Properties: u.props}
			record := !u.skip && countIf(status)
			u.mu.Unlock()
			if !record {
				return
			}
			// Never tied to the client's cancellation (a departed client must not lose the
			// request's usage), and never holding the response for longer than WithQueueWait.
			if err := rec.recordWithin(e, wait, e.Metric == metric); err != nil {
				o.logger.Warn("meterbill: request usage not recorded", "metric", e.Metric, "account", acct, "err", err)
			}
		})
	}
}

// hook is the httpsnoop WriteHeader hook. It returns writeHeader, a method value bound once
// per request, rather than a new closure on every call.
func (u *usage) hook(next httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
	u.next = next
	return u.writeHeader
}

// writeHeader captures the status: the first final one, as net/http sends it (1xx
// informational headers such as 103 Early Hints may come before it).
func (u *usage) writeHeader(code int) {
	if code >= 200 {
		u.status.CompareAndSwap(0, int32(code))
	}
	u.next(code)
}
