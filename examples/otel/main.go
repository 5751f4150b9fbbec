// Command otel reports meterbill to OpenTelemetry: its measurements as OTel metrics, through
// the small [meterbill.Observer] interface, and a span around every meter and Stripe call,
// through decorators of the [meterbill.Meter] and [meterbill.StripeClient] interfaces. It serves
// a metered API (meterbill's middleware and recorder on the in-process meter) and, when Stripe is
// configured, the invoice.created webhook.
//
//	go run .                                           # in examples/otel
//	curl -H 'Authorization: Bearer key_acme' localhost:8080/v1/hello
//
// Metrics and spans go to stdout here, every 10 seconds for metrics; point the exporters at
// your collector instead (otlpmetricgrpc, otlptracegrpc). Set STRIPE_SECRET_KEY and
// STRIPE_WEBHOOK_SECRET to mount the webhook on POST /webhook, and ADDR to listen elsewhere than
// 127.0.0.1:8080.
//
// It is its own module, so that meterbill's go.mod never requires OpenTelemetry.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/meterbill/meterbill"
)

const scope = "github.com/meterbill/meterbill/examples/otel"

// observer maps meterbill's measurements onto OTel instruments:
//
//	meterbill.events{kind=recorded|delivered|duplicate|failed|unconfirmed|rejected}   counter
//	meterbill.invoices.handled{outcome}                                               counter
//	meterbill.webhooks.refused{status}, meterbill.webhooks.ignored{type}              counters
//	meterbill.recorder.queue_depth                                                    gauge
//	meterbill.invoice.lines{result=created|existing|pending|refused}                  counter
//	meterbill.meter.duration{op,status}, meterbill.stripe.duration{op,status}         histograms, seconds
type observer struct {
	events, invoices, refused, ignored, lines metric.Int64Counter
	queueDepth                                metric.Int64Gauge
	meterSeconds, stripeSeconds               metric.Float64Histogram
}

var _ meterbill.Observer = (*observer)(nil)

func newObserver(mp metric.MeterProvider) (*observer, error) {
	m := mp.Meter(scope)
	var o observer
	var errs []error
	counter := func(name, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	o.events = counter("meterbill.events", "Usage events, by kind: recorded (accepted), delivered, duplicate, failed, unconfirmed (failed, may be held), rejected.")
	o.invoices = counter("meterbill.invoices.handled", "Invoices handled by the webhook or BillInvoice, by outcome.")
	o.refused = counter("meterbill.webhooks.refused", "Webhook requests refused before any invoice was looked at, by HTTP status.")
	o.ignored = counter("meterbill.webhooks.ignored", "Signed webhook deliveries of event types meterbill does not act on, by type.")
	o.lines = counter("meterbill.invoice.lines", "Invoice lines: created, existing (already billed), pending (for the next invoice), refused (alert on it).")
	var err error
	o.queueDepth, err = m.Int64Gauge("meterbill.recorder.queue_depth", metric.WithDescription("Events queued in the recorder or being delivered: alert when it stays near the queue's size."))
	errs = append(errs, err)
	o.meterSeconds, err = m.Float64Histogram("meterbill.meter.duration", metric.WithUnit("s"), metric.WithDescription("Latency of meter calls, by operation and status."))
	errs = append(errs, err)
	o.stripeSeconds, err = m.Float64Histogram("meterbill.stripe.duration", metric.WithUnit("s"), metric.WithDescription("Latency of Stripe requests, by operation and status class."))
	errs = append(errs, err)
	return &o, errors.Join(errs...)
}

var eventKinds = map[meterbill.MeasurementKind]string{
	meterbill.EventsRecorded: "recorded", meterbill.EventsDelivered: "delivered", meterbill.EventsDuplicate: "duplicate",
	meterbill.EventsFailed: "failed", meterbill.EventsUnconfirmed: "unconfirmed", meterbill.EventsRejected: "rejected",
}

var lineResults = map[meterbill.MeasurementKind]string{
	meterbill.LinesCreated: "created", meterbill.LinesExisting: "existing", meterbill.LinesPending: "pending", meterbill.LinesRefused: "refused",
}

// Observe implements [meterbill.Observer]; OTel instruments are safe for concurrent use.
func (o *observer) Observe(m meterbill.Measurement) {
	ctx := context.Background()
	n := int64(m.N)
	switch m.Kind {
	case meterbill.EventsRecorded, meterbill.EventsDelivered, meterbill.EventsDuplicate, meterbill.EventsFailed,
		meterbill.EventsUnconfirmed, meterbill.EventsRejected:
		o.events.Add(ctx, n, metric.WithAttributes(attribute.String("kind", eventKinds[m.Kind])))
	case meterbill.InvoicesHandled:
		o.invoices.Add(ctx, n, metric.WithAttributes(attribute.String("outcome", string(m.Outcome))))
	case meterbill.WebhooksRefused:
		o.refused.Add(ctx, n, metric.WithAttributes(attribute.String("status", m.Status)))
	case meterbill.WebhooksIgnored:
		o.ignored.Add(ctx, n, metric.WithAttributes(attribute.String("type", m.Op)))
	case meterbill.QueueDepth:
		o.queueDepth.Record(ctx, n)
	case meterbill.LinesCreated, meterbill.LinesExisting, meterbill.LinesPending, meterbill.LinesRefused:
		o.lines.Add(ctx, n, metric.WithAttributes(attribute.String("result", lineResults[m.Kind])))
	case meterbill.MeterLatency:
		o.meterSeconds.Record(ctx, m.Duration.Seconds(), metric.WithAttributes(attribute.String("op", m.Op), attribute.String("status", m.Status)))
	case meterbill.StripeLatency:
		o.stripeSeconds.Record(ctx, m.Duration.Seconds(), metric.WithAttributes(attribute.String("op", m.Op), attribute.String("status", m.Status)))
	default:
		// A kind added after this file was written: ignored until it is mapped.
	}
}

// span starts a span for one call and returns the function that ends it with the call's error.
func span(ctx context.Context, tr trace.Tracer, name string, attrs ...attribute.KeyValue) (context.Context, func(error)) {
	ctx, s := tr.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx, func(err error) {
		if err != nil {
			s.RecordError(err)
			s.SetStatus(codes.Error, err.Error())
		}
		s.End()
	}
}

// tracedMeter is a [meterbill.Meter] with a span around every call.
type tracedMeter struct {
	meterbill.Meter
	tr trace.Tracer
}

func (m tracedMeter) Define(ctx context.Context, metrics ...meterbill.Metric) (err error) {
	ctx, end := span(ctx, m.tr, "meter.define", attribute.Int("meterbill.metrics", len(metrics)))
	defer func() { end(err) }()
	return m.Meter.Define(ctx, metrics...)
}

func (m tracedMeter) Ingest(ctx context.Context, events []meterbill.Event) (res meterbill.IngestResult, err error) {
	ctx, end := span(ctx, m.tr, "meter.ingest", attribute.Int("meterbill.events", len(events)))
	defer func() { end(err) }()
	return m.Meter.Ingest(ctx, events)
}

func (m tracedMeter) Query(ctx context.Context, account uint64, mt meterbill.Metric, p meterbill.Period) (u meterbill.Usage, err error) {
	ctx, end := span(ctx, m.tr, "meter.query", attribute.String("meterbill.metric", mt.Code), attribute.Int64("meterbill.account", int64(account)))
	defer func() { end(err) }()
	return m.Meter.Query(ctx, account, mt, p)
}

// tracedStripe is a [meterbill.StripeClient] with a span around every call.
type tracedStripe struct {
	sc meterbill.StripeClient
	tr trace.Tracer
}

var _ meterbill.StripeClient = tracedStripe{}

func (s tracedStripe) Invoice(ctx context.Context, id string) (inv meterbill.StripeInvoice, err error) {
	ctx, end := span(ctx, s.tr, "stripe.invoice.retrieve", attribute.String("stripe.invoice", id))
	defer func() { end(err) }()
	return s.sc.Invoice(ctx, id)
}

func (s tracedStripe) Invoices(ctx context.Context, q meterbill.InvoiceQuery) (invs []meterbill.StripeInvoice, err error) {
	ctx, end := span(ctx, s.tr, "stripe.invoices.list", attribute.String("stripe.customer", q.Customer), attribute.String("stripe.subscription", q.Subscription))
	defer func() { end(err) }()
	return s.sc.Invoices(ctx, q)
}

func (s tracedStripe) CreateInvoice(ctx context.Context, inv meterbill.NewInvoice, key string) (made meterbill.StripeInvoice, err error) {
	ctx, end := span(ctx, s.tr, "stripe.invoice.create", attribute.String("stripe.customer", inv.Customer))
	defer func() { end(err) }()
	return s.sc.CreateInvoice(ctx, inv, key)
}

func (s tracedStripe) FinalizeInvoice(ctx context.Context, id string) (inv meterbill.StripeInvoice, err error) {
	ctx, end := span(ctx, s.tr, "stripe.invoice.finalize", attribute.String("stripe.invoice", id))
	defer func() { end(err) }()
	return s.sc.FinalizeInvoice(ctx, id)
}

func (s tracedStripe) Subscription(ctx context.Context, id string) (sub meterbill.StripeSubscription, err error) {
	ctx, end := span(ctx, s.tr, "stripe.subscription.retrieve", attribute.String("stripe.subscription", id))
	defer func() { end(err) }()
	return s.sc.Subscription(ctx, id)
}

func (s tracedStripe) CustomerMetadata(ctx context.Context, id string) (md map[string]string, err error) {
	ctx, end := span(ctx, s.tr, "stripe.customer.retrieve", attribute.String("stripe.customer", id))
	defer func() { end(err) }()
	return s.sc.CustomerMetadata(ctx, id)
}

func (s tracedStripe) InvoiceItems(ctx context.Context, customer string, since time.Time) (items []meterbill.InvoiceItem, err error) {
	ctx, end := span(ctx, s.tr, "stripe.invoiceitems.list", attribute.String("stripe.customer", customer))
	defer func() { end(err) }()
	return s.sc.InvoiceItems(ctx, customer, since)
}

func (s tracedStripe) CreateInvoiceItem(ctx context.Context, it meterbill.InvoiceItem, key string) (made meterbill.InvoiceItem, err error) {
	ctx, end := span(ctx, s.tr, "stripe.invoiceitem.create", attribute.String("stripe.customer", it.Customer), attribute.String("stripe.invoice", it.Invoice),
		attribute.Int64("stripe.amount", it.Amount))
	defer func() { end(err) }()
	return s.sc.CreateInvoiceItem(ctx, it, key)
}

var apiCalls = meterbill.Metric{Code: "api_calls", Aggregation: meterbill.Count, Period: meterbill.Calendar, CycleDay: 1}

var prices = []meterbill.Price{{Metric: apiCalls, Description: "API calls", Currencies: map[string][]meterbill.Tier{"usd": {{Unit: "0.1"}}}}}

// apiKeys stands in for your authentication: it decides which account a request bills.
var apiKeys = map[string]uint64{"Bearer key_acme": 1001, "Bearer key_globex": 1002}

func account(r *http.Request) (uint64, bool) {
	acct, ok := apiKeys[r.Header.Get("Authorization")]
	return acct, ok
}

// webhookConfig is the Stripe side; a nil client leaves the webhook out.
type webhookConfig struct {
	stripe  meterbill.StripeClient
	secrets []string
}

// app is the metered API and the webhook on one mux, reporting to mp and tp.
type app struct {
	meter   meterbill.Meter
	rec     *meterbill.Recorder
	handler http.Handler
}

func newApp(ctx context.Context, wc webhookConfig, mp metric.MeterProvider, tp trace.TracerProvider, logger *slog.Logger) (*app, error) {
	obs, err := newObserver(mp)
	if err != nil {
		return nil, err
	}
	tr := tp.Tracer(scope)
	meter := tracedMeter{Meter: meterbill.NewMemoryMeter(), tr: tr}
	rec, err := meterbill.NewRecorder(ctx, meter, []meterbill.Metric{apiCalls}, meterbill.WithObserver(obs), meterbill.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	usage := meterbill.NewMiddleware(rec, apiCalls.Code, account, meterbill.WithLogger(logger))
	api := http.NewServeMux()
	api.HandleFunc("GET /v1/hello", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, `{"hello":"world"}`)
	})
	mux := http.NewServeMux()
	mux.Handle("/v1/", usage(api))
	if wc.stripe != nil {
		plan, err := meterbill.NewPlan(prices...)
		if err != nil {
			return nil, errors.Join(err, rec.Close(ctx))
		}
		webhook, err := meterbill.NewHandler(meter, tracedStripe{sc: wc.stripe, tr: tr}, meterbill.SubscriptionMetadataAccount("meter_account"), plan, wc.secrets,
			meterbill.WithObserver(obs), meterbill.WithLogger(logger))
		if err != nil {
			return nil, errors.Join(err, rec.Close(ctx))
		}
		mux.Handle("POST /webhook", webhook)
	}
	return &app{meter: meter, rec: rec, handler: mux}, nil
}

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(logger); err != nil {
		logger.Error("otel example stopped", "err", err)
		os.Exit(1)
	}
}

func run(logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	metricExp, err := stdoutmetric.New()
	if err != nil {
		return err
	}
	traceExp, err := stdouttrace.New()
	if err != nil {
		return err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metricExp, sdkmetric.WithInterval(10*time.Second))))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(traceExp))
	var wc webhookConfig
	if key := os.Getenv("STRIPE_SECRET_KEY"); key != "" {
		sc, err := meterbill.NewStripeClient(key, meterbill.WithLogger(logger))
		if err != nil {
			return err
		}
		wc.stripe = sc
		for s := range strings.SplitSeq(os.Getenv("STRIPE_WEBHOOK_SECRET"), ",") {
			if s = strings.TrimSpace(s); s != "" {
				wc.secrets = append(wc.secrets, s)
			}
		}
	}
	a, err := newApp(ctx, wc, mp, tp, logger)
	if err != nil {
		return err
	}
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	srv := &http.Server{Addr: addr, Handler: a.handler, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("listening", "addr", addr, "webhook", wc.stripe != nil)
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	// Stop taking requests, let the ones in flight finish, deliver what the recorder holds, then
	// flush the telemetry.
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return errors.Join(err, srv.Shutdown(sctx), a.rec.Close(sctx), tp.Shutdown(sctx), mp.Shutdown(sctx))
}
