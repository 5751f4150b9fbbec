// Command prometheus exports meterbill's measurements as Prometheus metrics: a metered API
// (meterbill's middleware and recorder on the in-process meter) and, when Stripe is configured,
// the invoice.created webhook, with /metrics served by promhttp.
//
//	go run .                                           # in examples/prometheus
//	curl -H 'Authorization: Bearer key_acme' localhost:8080/v1/hello
//	curl localhost:8080/metrics | grep meterbill_
//
// Set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET to mount the webhook on POST /webhook (see
// examples/stripe-webhook), and ADDR to listen elsewhere than 127.0.0.1:8080.
//
// It is its own module, so that meterbill's go.mod never requires client_golang: meterbill
// reports through its small [meterbill.Observer] interface, and this file is the adapter.
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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meterbill/meterbill"
)

// observer maps meterbill's measurements onto Prometheus metrics, namespace "meterbill":
//
//	meterbill_events_{recorded,delivered,duplicate,failed,rejected}_total
//	meterbill_invoices_handled_total{outcome}
//	meterbill_webhooks_refused_total{status}
//	meterbill_recorder_queue_depth                        (gauge)
//	meterbill_invoice_lines_total{result="created|existing|pending|refused"}
//	meterbill_meter_request_duration_seconds{op,status}   (histogram)
//	meterbill_stripe_request_duration_seconds{op,status}  (histogram)
//
// Recorded, delivered and failed events are separate counters because they overlap (delivered
// and failed events were recorded first); the lines of an invoice are one counter with a label,
// because created, existing, pending and refused lines are disjoint and add up.
type observer struct {
	events        map[meterbill.MeasurementKind]prometheus.Counter
	invoices      *prometheus.CounterVec
	refused       *prometheus.CounterVec
	ignored       *prometheus.CounterVec
	queueDepth    prometheus.Gauge
	lines         *prometheus.CounterVec
	meterSeconds  *prometheus.HistogramVec
	stripeSeconds *prometheus.HistogramVec
}

var _ meterbill.Observer = (*observer)(nil)

// newObserver creates the metrics and registers them with reg.
func newObserver(reg prometheus.Registerer) *observer {
	o := &observer{
		events: map[meterbill.MeasurementKind]prometheus.Counter{},
		invoices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "meterbill", Name: "invoices_handled_total",
			Help: "Invoices handled by the webhook or BillInvoice, by outcome.",
		}, []string{"outcome"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "meterbill", Name: "webhooks_refused_total",
			Help: "Webhook requests refused before any invoice was looked at, by HTTP status (400 signature or malformed, 413 too large, 405 not a POST).",
		}, []string{"status"}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "meterbill", Name: "recorder_queue_depth",
			Help: "Events queued in the recorder or being delivered: alert when it stays near the queue's size (the meter is not keeping up).",
		}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "meterbill", Name: "webhooks_ignored_total",
			Help: "Signed webhook deliveries of event types meterbill does not act on, by type.",
		}, []string{"type"}),
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "meterbill", Name: "invoice_lines_total",
			Help: "Invoice lines: created on the invoice, existing (already billed, skipped), pending (created for the next invoice because the invoice was finalized), or refused (not billed: Stripe refused them for good or they are over the per-item limit; alert on it).",
		}, []string{"result"}),
		meterSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "meterbill", Name: "meter_request_duration_seconds",
			Help:    "Latency of meter calls, by operation (define, ingest, query) and status (ok, error).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8), // 0.5 ms to 8 s
		}, []string{"op", "status"}),
		stripeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "meterbill", Name: "stripe_request_duration_seconds",
			Help:    "Latency of Stripe API requests, by operation and HTTP status class (error: no answer).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 8), // 10 ms to 6 s
		}, []string{"op", "status"}),
	}
	help := map[meterbill.MeasurementKind]string{
		meterbill.EventsRecorded:    "Usage events the recorder accepted.",
		meterbill.EventsDelivered:   "Usage events the meter acknowledged, duplicates included.",
		meterbill.EventsDuplicate:   "Delivered usage events the meter already had.",
		meterbill.EventsFailed:      "Accepted usage events the recorder gave up on.",
		meterbill.EventsUnconfirmed: "Failed usage events the meter may hold: sent without a success.",
		meterbill.EventsRejected:    "Usage events the recorder refused.",
	}
	for kind, h := range help {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "meterbill", Name: string(kind) + "_total", Help: h})
		o.events[kind] = c
		reg.MustRegister(c)
	}
	reg.MustRegister(o.invoices, o.refused, o.ignored, o.queueDepth, o.lines, o.meterSeconds, o.stripeSeconds)
	return o
}

// Observe implements [meterbill.Observer]. The map is read-only after newObserver and the
// metrics are safe for concurrent use, so Observe is too.
func (o *observer) Observe(m meterbill.Measurement) {
	switch m.Kind {
	case meterbill.EventsRecorded, meterbill.EventsDelivered, meterbill.EventsDuplicate, meterbill.EventsFailed,
		meterbill.EventsUnconfirmed, meterbill.EventsRejected:
		o.events[m.Kind].Add(float64(m.N))
	case meterbill.InvoicesHandled:
		o.invoices.WithLabelValues(string(m.Outcome)).Add(float64(m.N))
	case meterbill.WebhooksRefused:
		o.refused.WithLabelValues(m.Status).Add(float64(m.N))
	case meterbill.QueueDepth:
		o.queueDepth.Set(float64(m.N))
	case meterbill.WebhooksIgnored:
		o.ignored.WithLabelValues(m.Op).Add(float64(m.N))
	case meterbill.LinesCreated:
		o.lines.WithLabelValues("created").Add(float64(m.N))
	case meterbill.LinesExisting:
		o.lines.WithLabelValues("existing").Add(float64(m.N))
	case meterbill.LinesPending:
		o.lines.WithLabelValues("pending").Add(float64(m.N))
	case meterbill.LinesRefused:
		o.lines.WithLabelValues("refused").Add(float64(m.N))
	case meterbill.MeterLatency:
		o.meterSeconds.WithLabelValues(m.Op, m.Status).Observe(m.Duration.Seconds())
	case meterbill.StripeLatency:
		o.stripeSeconds.WithLabelValues(m.Op, m.Status).Observe(m.Duration.Seconds())
	default:
		// A kind added after this file was written: ignored until it is mapped.
	}
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

// app is the metered API, the webhook and /metrics on one mux.
type app struct {
	meter   *meterbill.MemoryMeter
	rec     *meterbill.Recorder
	handler http.Handler
}

func newApp(ctx context.Context, wc webhookConfig, logger *slog.Logger) (*app, error) {
	reg := prometheus.NewRegistry()
	obs := newObserver(reg)
	meter := meterbill.NewMemoryMeter()
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if wc.stripe != nil {
		plan, err := meterbill.NewPlan(prices...)
		if err != nil {
			return nil, errors.Join(err, rec.Close(ctx))
		}
		webhook, err := meterbill.NewHandler(meter, wc.stripe, meterbill.SubscriptionMetadataAccount("meter_account"), plan, wc.secrets,
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
		logger.Error("prometheus example stopped", "err", err)
		os.Exit(1)
	}
}

func run(logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
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
	a, err := newApp(ctx, wc, logger)
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
	case err := <-errc:
		return errors.Join(err, a.rec.Close(context.Background()))
	case <-ctx.Done():
	}
	return shutdown(srv, a.rec)
}

// shutdown stops taking requests, lets the ones in flight finish (webhooks within the handler's
// 10 s deadline), then delivers everything the recorder still holds.
func shutdown(srv *http.Server, rec *meterbill.Recorder) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return errors.Join(srv.Shutdown(ctx), rec.Close(ctx))
}
