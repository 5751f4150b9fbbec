package meterbill

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v82"
)

// Each constructor takes options of its own type, so that an option given to a constructor it
// does not apply to fails to compile, as grpc's DialOption and ServerOption do. An option that
// applies to several constructors implements each of their types. Options are applied in order
// and checked together once all are applied; a value out of range is an error.
type (
	// HandlerOption configures [NewHandler].
	HandlerOption interface{ applyHandler(*options) }
	// StripeClientOption configures [NewStripeClient].
	StripeClientOption interface{ applyStripeClient(*options) }
	// StripeClientFromOption configures [NewStripeClientFrom].
	StripeClientFromOption interface{ applyStripeClientFrom(*options) }
	// ResolverOption configures [CustomerMetadataAccount].
	ResolverOption interface{ applyResolver(*options) }
	// RecorderOption configures [NewRecorder].
	RecorderOption interface{ applyRecorder(*options) }
	// MiddlewareOption configures [NewMiddleware].
	MiddlewareOption interface{ applyMiddleware(*options) }
	// UnimeterOption configures [DialUnimeter].
	UnimeterOption interface{ applyUnimeter(*options) }
)

// Option applies to every constructor that logs: [WithLogger].
type Option interface {
	HandlerOption
	StripeClientOption
	ResolverOption
	RecorderOption
	MiddlewareOption
	UnimeterOption
}

// ObserverOption applies to the constructors that report measurements: [WithObserver].
type ObserverOption interface {
	HandlerOption
	ResolverOption
	RecorderOption
}

// StripeOption applies to both Stripe client constructors.
type StripeOption interface {
	StripeClientOption
	StripeClientFromOption
}

// optionFunc sets fields of options; each named type below implements the option types of the
// constructors its options apply to.
type optionFunc func(*options)

type (
	handlerOption    optionFunc
	stripeOption     optionFunc // NewStripeClient only
	bothStripeOption optionFunc
	resolverOption   optionFunc
	recorderOption   optionFunc
	middlewareOption optionFunc
	unimeterOption   optionFunc
	loggerOption     optionFunc
	observerOption   optionFunc // handler, resolver and recorder
	retryOption      optionFunc // handler and recorder
)

func (f handlerOption) applyHandler(o *options)             { f(o) }
func (f stripeOption) applyStripeClient(o *options)         { f(o) }
func (f bothStripeOption) applyStripeClient(o *options)     { f(o) }
func (f bothStripeOption) applyStripeClientFrom(o *options) { f(o) }
func (f resolverOption) applyResolver(o *options)           { f(o) }
func (f recorderOption) applyRecorder(o *options)           { f(o) }
func (f middlewareOption) applyMiddleware(o *options)       { f(o) }
func (f unimeterOption) applyUnimeter(o *options)           { f(o) }
func (f loggerOption) applyHandler(o *options)              { f(o) }
func (f loggerOption) applyStripeClient(o *options)         { f(o) }
func (f loggerOption) applyResolver(o *options)             { f(o) }
func (f loggerOption) applyRecorder(o *options)             { f(o) }
func (f loggerOption) applyMiddleware(o *options)           { f(o) }
func (f loggerOption) applyUnimeter(o *options)             { f(o) }
func (f observerOption) applyHandler(o *options)            { f(o) }
func (f observerOption) applyResolver(o *options)           { f(o) }
func (f observerOption) applyRecorder(o *options)           { f(o) }
func (f retryOption) applyHandler(o *options)               { f(o) }
func (f retryOption) applyRecorder(o *options)              { f(o) }

// options is what every constructor reads. It is filled by Options and validated once, so the
// objects built from it never change after construction.
type options struct {
	logger       *slog.Logger
	observer     Observer
	maxBody      int64
	tolerance    time.Duration
	deadline     time.Duration
	zeroLines    bool
	errorHandler func(http.ResponseWriter, *http.Request, error)
	reportHook   func(*Report)
	stripeURL    string
	stripeRate   int
	stripeAcct   string
	itemParams   func(*stripe.InvoiceItemCreateParams)
	httpClient   *http.Client
	cacheSize    int
	cacheTTL     time.Duration
	now          func() time.Time
	retryBase    time.Duration
	retryMax     time.Duration
	lookback     time.Duration
	trialUsage   bool
	queueWait    time.Duration
	maxInvoices  int
	finalInvoice FinalInvoice

	queueSize        int
	batchSize        int
	flushInterval    time.Duration
	rejectWhenFull   bool
	lane             int
	deliveryErr      func(error, []Event)
	retryMaxRecorder time.Duration
	countIf          func(status int) bool
	defaultValue     Value

	requestTimeout time.Duration
	connsPerNode   int
	syncIngest     bool
}

// newOptions applies opts, each through apply, over the defaults, and checks the result.
func newOptions[O any](opts []O, apply func(O, *options)) (*options, error) {
	o := &options{
		logger:    slog.New(slog.DiscardHandler),
		observer:  nopObserver{},
		maxBody:   1 << 20,
		tolerance: 300 * time.Second,
		deadline:  10 * time.Second,
		cacheSize: 10_000,
		cacheTTL:  10 * time.Minute,
		now:       time.Now,
		retryBase: 100 * time.Millisecond,
		retryMax:  2 * time.Second,
		lookback:  60 * 24 * time.Hour,

		queueSize:        100_000,
		batchSize:        500,
		flushInterval:    200 * time.Millisecond,
		lane:             -1,
		retryMaxRecorder: 5 * time.Second,
		defaultValue:     Units(1),

		requestTimeout: 5 * time.Second,
		queueWait:      50 * time.Millisecond,
		connsPerNode:   4,
	}
	for _, opt := range opts {
		if any(opt) == nil {
			return nil, fmt.Errorf("meterbill: a nil option")
		}
		apply(opt, o)
	}
	switch {
	case o.logger == nil:
		return nil, fmt.Errorf("meterbill: WithLogger(nil): pass a logger, or leave the option out to discard logs")
	case o.observer == nil:
		return nil, fmt.Errorf("meterbill: WithObserver(nil): pass an observer, or leave the option out")
	case o.maxBody < 1024:
		return nil, fmt.Errorf("meterbill: WithMaxBodyBytes(%d): want at least 1024", o.maxBody)
	case o.finalInvoice > FinalInvoiceOff:
		return nil, fmt.Errorf("meterbill: WithFinalInvoice(%d): unknown mode", o.finalInvoice)
	case o.queueWait < 0:
		return nil, fmt.Errorf("meterbill: WithQueueWait(%s): want 0 or a positive duration", o.queueWait)
	case o.maxInvoices < 0:
		return nil, fmt.Errorf("meterbill: WithMaxConcurrentInvoices(%d): want 0 (no bound) or more", o.maxInvoices)
	case o.stripeRate < -1:
		return nil, fmt.Errorf("meterbill: WithStripeRateLimit(%d): want a positive rate, or -1 for none", o.stripeRate)
	case o.lookback < 0:
		return nil, fmt.Errorf("meterbill: WithLookback(%s): want 0 (off) or a positive duration", o.lookback)
	case o.tolerance <= 0:
		return nil, fmt.Errorf("meterbill: WithTolerance(%s): want a positive duration", o.tolerance)
	case o.deadline <= 0:
		return nil, fmt.Errorf("meterbill: WithDeadline(%s): want a positive duration", o.deadline)
	case o.cacheSize < 0 || o.cacheTTL < 0:
		return nil, fmt.Errorf("meterbill: WithCache(%d, %s): want non-negative values", o.cacheSize, o.cacheTTL)
	case o.batchSize < 1 || o.batchSize > MaxBatchEvents:
		return nil, fmt.Errorf("meterbill: WithBatchSize(%d): want 1 to %d", o.batchSize, MaxBatchEvents)
	case o.queueSize < o.batchSize:
		return nil, fmt.Errorf("meterbill: WithQueueSize(%d): want at least the batch size (%d)", o.queueSize, o.batchSize)
	case o.flushInterval <= 0:
		return nil, fmt.Errorf("meterbill: WithFlushInterval(%s): want a positive duration", o.flushInterval)
	case o.requestTimeout <= 0:
		return nil, fmt.Errorf("meterbill: WithRequestTimeout(%s): want a positive duration", o.requestTimeout)
	case o.connsPerNode < 1:
		return nil, fmt.Errorf("meterbill: WithConnsPerNode(%d): want at least 1", o.connsPerNode)
	case o.lane >= laneCount:
		return nil, fmt.Errorf("meterbill: WithLane(%d): want 0 to %d", o.lane, laneCount-1)
	}
	return o, nil
}

// WithLogger sends meterbill's logs to l. It applies to every constructor. Defaults to
// discarding them.
func WithLogger(l *slog.Logger) Option {
	return loggerOption(func(o *options) { o.logger = l })
}

// WithObserver sends meterbill's measurements to o: events recorded, delivered and lost by
// [NewRecorder]'s recorder; invoices by outcome, invoice lines, and meter and Stripe latencies by
// [NewHandler]'s handler; Stripe latencies by [CustomerMetadataAccount]'s resolver. See
// [Observer] for what is measured when. It applies to [NewRecorder], [NewHandler] and
// [CustomerMetadataAccount]. Defaults to measuring nothing.
func WithObserver(o Observer) ObserverOption {
	return observerOption(func(opts *options) { opts.observer = o })
}

// WithMaxBodyBytes caps the webhook request body; a larger body is answered 413. It applies to
// [NewHandler]. Defaults to 1 MiB, far above any invoice.created event.
func WithMaxBodyBytes(n int64) HandlerOption {
	return handlerOption(func(o *options) { o.maxBody = n })
}

// WithTolerance sets how old (or how far in the future) a webhook's signed timestamp may be;
// Stripe signs every delivery attempt afresh, so redeliveries days later still pass. It applies
// to [NewHandler]. Defaults to 300 seconds, Stripe's own tolerance.
func WithTolerance(d time.Duration) HandlerOption {
	return handlerOption(func(o *options) { o.tolerance = d })
}

// WithDeadline bounds the handling of one invoice, Stripe retries included. When it passes, the
// webhook is answered 500 so that Stripe redelivers it and keeps the invoice a draft. It applies
// to [NewHandler]. Defaults to 10 seconds.
func WithDeadline(d time.Duration) HandlerOption {
	return handlerOption(func(o *options) { o.deadline = d })
}

// WithLookback sets how far before an invoice's period the handler looks back, so that a
// finance team never finds a hole or a stale figure: buckets never billed (an invoice whose
// webhook never arrived, an endpoint down past Stripe's retries) are billed on the next renewal,
// each missed billing period on lines of its own, and buckets whose usage grew after they were
// billed (late events) get an adjustment line for the difference. Catch-up never reaches before
// the subscription's usage began (its start, or the end of its trial; see [WithTrialUsage]), so
// usage from before a customer subscribed is never charged. Keep it inside the meter's retention
// (Unimeter's default is 90 days): older buckets read as empty. 0 turns both off. It applies to
// [NewHandler]. Defaults to 60 days.
func WithLookback(d time.Duration) HandlerOption {
	return handlerOption(func(o *options) { o.lookback = d })
}

// FinalInvoice is what the handler does when a subscription ends (customer.subscription.deleted):
// its usage is billed in arrears, so the last period, the part before the end included, has no
// invoice of Stripe's to go on.
type FinalInvoice uint8

// The final invoice modes.
const (
	// FinalInvoiceCharge creates a final invoice with everything still owed, finalizes it and
	// lets Stripe collect it from the customer's default payment method (collection_method
	// charge_automatically, auto_advance on), as it would a renewal.
	FinalInvoiceCharge FinalInvoice = iota
	// FinalInvoiceDraft creates the final invoice and leaves it a draft, with auto_advance off,
	// for someone to review and finalize.
	FinalInvoiceDraft
	// FinalInvoiceOff bills nothing when a subscription ends.
	FinalInvoiceOff
)

// WithFinalInvoice says what happens when a subscription ends. It applies to [NewHandler].
// Defaults to [FinalInvoiceCharge].
func WithFinalInvoice(f FinalInvoice) HandlerOption {
	return handlerOption(func(o *options) { o.finalInvoice = f })
}

// WithMaxConcurrentInvoices bounds how many invoices the handler bills at once (webhooks and
// BillInvoice alike), so that a month's renewals arriving together queue for the Stripe budget
// ([WithStripeRateLimit]) instead of all running out of their deadline. An invoice that finds no
// room within half its deadline is answered 503 ([ErrBusy]), and Stripe redelivers it later. It
// applies to [NewHandler]. Defaults to 0: no bound.
func WithMaxConcurrentInvoices(n int) HandlerOption {
	return handlerOption(func(o *options) { o.maxInvoices = n })
}

// WithTrialUsage says whether usage during a subscription's trial is billed. It applies to
// [NewHandler]. Defaults to false: billing starts at the trial's end (the subscription's
// trial_end), and the usage before it is never billed.
func WithTrialUsage(billed bool) HandlerOption {
	return handlerOption(func(o *options) { o.trialUsage = billed })
}

// WithZeroUsageLines adds a line with quantity 0 and amount 0 for each billed metric and period
// without usage, so invoices show every metered item. It applies to [NewHandler]. Defaults to
// false: no usage, no line.
func WithZeroUsageLines(on bool) HandlerOption {
	return handlerOption(func(o *options) { o.zeroLines = on })
}

// WithErrorHandler replaces how the webhook handler answers a failure. The handler calls f with
// the error (use [errors.Is] with [ErrBadSignature] and friends, and [errors.As] with
// *[StripeError]) instead of writing its default answer: 400 for a request that is not a valid
// signed event, 413 for an oversized body, 500 for anything Stripe should retry. f must not answer
// 2xx for a failure, or Stripe stops retrying and the invoice loses its usage. It applies to
// [NewHandler]. Defaults to the statuses above, with no internal text in the body.
func WithErrorHandler(f func(w http.ResponseWriter, r *http.Request, err error)) HandlerOption {
	return handlerOption(func(o *options) { o.errorHandler = f })
}

// WithReportHook calls f with the [Report] of every invoice.created event the handler
// processed, whatever the outcome: billed, skipped for an unknown customer, or failed. Use it
// for metrics and alerts. f runs on the request's goroutine and must be quick. It applies to
// [NewHandler]. Defaults to none.
func WithReportHook(f func(*Report)) HandlerOption {
	return handlerOption(func(o *options) { o.reportHook = f })
}

// WithStripeURL points the Stripe client at another API base URL, such as stripe-mock or a test
// server. It applies to [NewStripeClient]. Defaults to Stripe's API.
func WithStripeURL(url string) StripeClientOption {
	return stripeOption(func(o *options) { o.stripeURL = url })
}

// WithHTTPClient sets the HTTP client the Stripe client uses. It applies to [NewStripeClient].
// Defaults to a client with a 30-second timeout.
func WithHTTPClient(c *http.Client) StripeClientOption {
	return stripeOption(func(o *options) { o.httpClient = c })
}

// WithStripeRateLimit caps the Stripe requests the client sends at perSecond a second (in bursts
// of up to perSecond), shared by everything that uses the client; a 429 halves the rate and
// pauses for Stripe's Retry-After, and the rate recovers as requests succeed. Stripe allows 100
// requests a second in live mode and 25 in test mode across the account: leave your app's own
// Stripe calls their share. -1 turns the limit off. It applies to [NewStripeClient] and
// [NewStripeClientFrom] (which holds each call, not each page, to it). Defaults to 80 a second
// for a live key (sk_live_, rk_live_) and 20 for any other; to 20 for NewStripeClientFrom.
func WithStripeRateLimit(perSecond int) StripeOption {
	return bothStripeOption(func(o *options) { o.stripeRate = perSecond })
}

// WithStripeAccount makes every request act on a connected account (Connect's Stripe-Account
// header): a platform bills a connected account's customers with a client per account. It
// applies to [NewStripeClient] and [NewStripeClientFrom]. Defaults to the key's own account.
func WithStripeAccount(accountID string) StripeOption {
	return bothStripeOption(func(o *options) { o.stripeAcct = accountID })
}

// WithItemParams adds fields meterbill does not own to every invoice item it creates: a tax
// code and behavior, tax rates, discountable, discounts, or a product (params.PriceData with
// only its Product and TaxBehavior). f runs on empty parameters before meterbill sets its own
// fields, which it then sets whatever f put there: the customer, currency, description, invoice,
// period, amount (quantity and exact unit amount), its metadata keys (f's other keys are kept),
// the idempotency key and the account; subscription and pricing are cleared. With a product, the
// unit amount goes in price_data, so Stripe computes the same amount. f must be safe for
// concurrent use. It applies to [NewStripeClient] and [NewStripeClientFrom].
func WithItemParams(f func(params *stripe.InvoiceItemCreateParams)) StripeOption {
	return bothStripeOption(func(o *options) { o.itemParams = f })
}

// WithCache bounds the customer-metadata cache: at most size customers, each kept for ttl. A
// size of 0 disables caching. It applies to [CustomerMetadataAccount]. Defaults to 10,000
// customers for 10 minutes.
func WithCache(size int, ttl time.Duration) ResolverOption {
	return resolverOption(func(o *options) { o.cacheSize, o.cacheTTL = size, ttl })
}

// withClock injects the time source for tests.
func withClock(now func() time.Time) ObserverOption {
	return observerOption(func(o *options) { o.now = now })
}

// withRetryBackoff shortens retry waits in tests.
func withRetryBackoff(base, maxWait time.Duration) retryOption {
	return retryOption(func(o *options) {
		o.retryBase, o.retryMax, o.retryMaxRecorder = base, maxWait, maxWait
	})
}

// WithQueueSize bounds the recorder's queue: events queued plus events being delivered. It
// applies to [NewRecorder]. Defaults to 100,000 events (about 20 MB with a few properties each).
func WithQueueSize(n int) RecorderOption {
	return recorderOption(func(o *options) { o.queueSize = n })
}

// WithBatchSize sets how many events the recorder sends in one request to the meter, and how
// many queued events trigger a flush. It applies to [NewRecorder]. Defaults to 500; at most 1024,
// the meter's limit.
func WithBatchSize(n int) RecorderOption {
	return recorderOption(func(o *options) { o.batchSize = n })
}

// WithFlushInterval sets how often the recorder flushes a partial batch. It applies to
// [NewRecorder]. Defaults to 200 ms.
func WithFlushInterval(d time.Duration) RecorderOption {
	return recorderOption(func(o *options) { o.flushInterval = d })
}

// WithRejectWhenFull makes Record return [ErrQueueFull] at once when the queue is full, instead
// of waiting for room; the rejections are counted in [RecorderStats]. It applies to
// [NewRecorder]. Defaults to waiting (until the caller's context ends), which loses nothing but
// makes callers wait while the meter is down long enough to fill the queue.
func WithRejectWhenFull() RecorderOption {
	return recorderOption(func(o *options) { o.rejectWhenFull = true })
}

// WithLane sets the recorder's lane, 0 to 999: the nanosecond digits of the timestamps it stamps,
// which keep events of different processes distinct within one microsecond. Give each process
// of a deployment its own lane (a pod ordinal, say) to rule collisions out. It applies to
// [NewRecorder]. Defaults to a random lane.
func WithLane(n int) RecorderOption {
	return recorderOption(func(o *options) { o.lane = n })
}

// WithDeliveryErrorHandler receives the events the recorder gives up on, with the reason: an
// error wrapping [ErrUndelivered] for events the meter does not hold (refused for good, or never
// sent because Close's context ended first), or [ErrUnconfirmed] for events sent at least once
// without a success, which the meter may hold. Persist the first kind to replay later;
// replaying the second can double them, so reconcile those first, or alert. It is called from
// the recorder's delivery streams and from middleware requests that found no room in the queue,
// so it may be called concurrently. It applies to [NewRecorder]. Defaults to logging them at error level.
func WithDeliveryErrorHandler(f func(err error, events []Event)) RecorderOption {
	return recorderOption(func(o *options) { o.deliveryErr = f })
}

// WithCountIf decides from a response's status whether the middleware records the request. It
// applies to [NewMiddleware]. Defaults to status < 400.
func WithCountIf(f func(status int) bool) MiddlewareOption {
	return middlewareOption(func(o *options) { o.countIf = f })
}

// WithQueueWait bounds how long a request through the middleware waits for room in a full
// recorder queue (a long meter outage): past it the request's usage is rejected, counted
// ([EventsRejected]) and handed to the [WithDeliveryErrorHandler] handler with [ErrQueueFull],
// and the response is never held longer. It applies to [NewMiddleware]. Defaults to 50 ms.
func WithQueueWait(d time.Duration) MiddlewareOption {
	return middlewareOption(func(o *options) { o.queueWait = d })
}

// WithDefaultValue sets the value the middleware records for a request whose handler does not
// set one with [SetUsageValue]. It applies to [NewMiddleware]. Defaults to 1.
func WithDefaultValue(v Value) MiddlewareOption {
	return middlewareOption(func(o *options) { o.defaultValue = v })
}

// WithRequestTimeout bounds one request to a Unimeter node. The server has no timeouts of its
// own: a request that outlives this is abandoned, its connection closed, and the request retried
// with the same events (the node's dedup recognises them). It applies to [DialUnimeter].
// Defaults to 5 seconds.
func WithRequestTimeout(d time.Duration) UnimeterOption {
	return unimeterOption(func(o *options) { o.requestTimeout = d })
}

// WithConnsPerNode bounds the open connections to one Unimeter node; the server answers each
// connection one request at a time, so this bounds the requests in flight per node. It applies
// to [DialUnimeter]. Defaults to 4.
func WithConnsPerNode(n int) UnimeterOption {
	return unimeterOption(func(o *options) { o.connsPerNode = n })
}

// WithSyncIngest makes ingest wait for the node's WAL fsync (INGEST_SYNC) instead of its
// in-memory apply (INGEST_ASYNC): slower, and the events survive a crash of the node once
// acknowledged. It applies to [DialUnimeter]. Defaults to off.
func WithSyncIngest() UnimeterOption {
	return unimeterOption(func(o *options) { o.syncIngest = true })
}

// Observer receives meterbill's measurements: how many events were recorded, delivered and lost,
// how each invoice was handled and with how many lines, and how long every meter and Stripe call
// took. Feed them to metrics (examples/prometheus maps them onto Prometheus counters and
// histograms). Pass one with [WithObserver].
//
// Implementations must be fast and safe for concurrent use: Observe runs on the recorder's
// goroutine and on webhook requests, and blocking it delays deliveries and invoices. They must
// ignore kinds they do not know: meterbill may add kinds in a minor release.
//
// It has one method that takes plain data, rather than a method per measurement (an interface
// cannot gain a method without breaking every implementation) or a struct of optional hooks in
// the style of httptrace.ClientTrace (which needs a nil check for each). A switch on
// [Measurement.Kind] maps each kind onto one counter or histogram, labelled by the other fields.
type Observer interface {
	// Observe receives one measurement.
	Observe(m Measurement)
}

// ObserverFunc adapts a function to [Observer].
type ObserverFunc func(m Measurement)

var _ Observer = ObserverFunc(nil)

// Observe calls f(m).
func (f ObserverFunc) Observe(m Measurement) { f(m) }

// MeasurementKind says what a [Measurement] measures, and so which of its fields are set. Its
// value is a stable snake_case name, usable as (part of) a metric name.
type MeasurementKind string

// The measurement kinds. Counts (the Events, InvoicesHandled, WebhooksRefused and Lines kinds)
// set N, always positive; latencies (MeterLatency, StripeLatency) set Op, Status and Duration.
const (
	// EventsRecorded counts events [Recorder.Record] accepted. They are reported in bulk when the
	// recorder takes them for delivery, at most a flush interval after Record returned, so that
	// Record itself never calls the observer; after [Recorder.Close] their total equals
	// [RecorderStats].Enqueued.
	EventsRecorded MeasurementKind = "events_recorded"
	// EventsDelivered counts events the meter acknowledged, duplicates included, one
	// measurement per batch.
	EventsDelivered MeasurementKind = "events_delivered"
	// EventsDuplicate counts, of the delivered events, those the meter already had: retries
	// that arrived twice.
	EventsDuplicate MeasurementKind = "events_duplicate"
	// EventsFailed counts accepted events the recorder gave up on (see [ErrUndelivered] and
	// [ErrUnconfirmed]).
	EventsFailed MeasurementKind = "events_failed"
	// EventsUnconfirmed counts, of the failed events, those the recorder had sent at least once
	// without a success: the meter may hold them (see [ErrUnconfirmed]).
	EventsUnconfirmed MeasurementKind = "events_unconfirmed"
	// EventsRejected counts events Record refused: invalid, unknown metric, queue full or closed.
	EventsRejected MeasurementKind = "events_rejected"
	// QueueDepth is the recorder's queue depth, in events, in N (a gauge, not a count),
	// reported at each flush. Alert when it stays near the queue's size: the meter is not
	// keeping up, and the middleware will soon reject requests' usage.
	QueueDepth MeasurementKind = "queue_depth"
	// InvoicesHandled counts one invoice handled, by the webhook or [Handler.BillInvoice], with
	// its [Report]'s Outcome in Outcome; N is 1.
	InvoicesHandled MeasurementKind = "invoices_handled"
	// WebhooksRefused counts one webhook request refused before any invoice was looked at,
	// with the HTTP status in Status: "400" (signature or malformed event), "413" (body too
	// large) or "405" (not a POST); N is 1. Deliveries that reach an invoice are
	// InvoicesHandled.
	WebhooksRefused MeasurementKind = "webhooks_refused"
	// WebhooksIgnored counts signed deliveries of event types meterbill does not act on, with
	// the type in Op; N is 1. A stream of them means the endpoint subscribes to events it need
	// not (see docs/invoicing.md's Stripe settings).
	WebhooksIgnored MeasurementKind = "webhooks_ignored"
	// LinesCreated counts invoice items created on the invoice.
	LinesCreated MeasurementKind = "lines_created"
	// LinesExisting counts meterbill's items already on Stripe for the buckets an invoice bills,
	// which it skipped (a redelivery finds them all).
	LinesExisting MeasurementKind = "lines_existing"
	// LinesPending counts items created as pending invoice items for the customer's next
	// invoice, because the invoice was finalized before they could be added to it.
	LinesPending MeasurementKind = "lines_pending"
	// LinesRefused counts lines not billed because Stripe refused them for good, or because
	// their amount is over the per-item limit ([ErrAmountOverLimit]). Alert on it: the usage
	// stays unbilled until someone acts (see [Report].Refused).
	LinesRefused MeasurementKind = "lines_refused"
	// MeterLatency is one call to the [Meter]: Op is "define", "ingest" or "query", and Status
	// is "ok" or "error" (a failed ingest is retried, so its errors count the retries).
	MeterLatency MeasurementKind = "meter_latency"
	// StripeLatency is one [StripeClient] call, each retry its own: Op is "invoice",
	// "customer_metadata", "invoice_items" (the whole list, however many pages) or
	// "create_invoice_item", and Status is the HTTP status class: "2xx" for success, "4xx" or
	// "5xx", or "error" when no answer arrived or the client returned no *[StripeError].
	StripeLatency MeasurementKind = "stripe_latency"
)

// Measurement is one observation for an [Observer]. It is plain data; Kind says which other
// fields are set, and the rest are zero.
type Measurement struct {
	// Kind is what was measured.
	Kind MeasurementKind
	// N is how many, for counts.
	N int
	// Outcome is the invoice's outcome, for InvoicesHandled.
	Outcome Outcome
	// Op is the operation, for latencies.
	Op string
	// Status is the result class, for latencies.
	Status string
	// Duration is the latency, for latencies.
	Duration time.Duration
}

// nopObserver is the default Observer.
type nopObserver struct{}

var _ Observer = nopObserver{}

func (nopObserver) Observe(Measurement) {}

// count reports n of kind, if any.
func count(o Observer, kind MeasurementKind, n int) {
	if n > 0 {
		o.Observe(Measurement{Kind: kind, N: n})
	}
}
